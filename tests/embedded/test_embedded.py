"""The embedded servers that stand in for PostgreSQL and Redis on a machine that has none."""


def test_a_deep_checkout_puts_the_redis_socket_where_a_unix_socket_fits(tmp_path):
    from embedded import _SOCKET_PATH_MAX, _redis_socket_path

    shallow = tmp_path / "redis"
    deep = tmp_path / ("d" * 120) / "redis"
    assert _redis_socket_path(shallow) == shallow / "redis.sock"
    assert len(str(_redis_socket_path(deep))) <= _SOCKET_PATH_MAX
    assert _redis_socket_path(deep) == _redis_socket_path(deep)  # stable, so a second run finds the server
