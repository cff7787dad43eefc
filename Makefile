.PHONY: run test bench bench-abuse redteam
run:  ## install everything and run the platform on http://127.0.0.1:8000
	bin/run
test:  ## install everything and run the whole test suite
	bin/test
bench:  ## load benchmark of the prediction API (bench/README in the main README)
	bin/bench
bench-abuse:  ## detection benchmark of the abuse jobs (per-attack detection delay, false positives)
	bin/bench-abuse
redteam:  ## model-extraction red-team exercise against its own platform (README, "Red-team exercise")
	bin/redteam
