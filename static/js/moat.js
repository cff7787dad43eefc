/* Moat: progressive enhancement only. Copies the text of an element to the clipboard when a
   `.copy-button[data-copy-target]` is clicked. Everything works without this file. */
(function () {
  "use strict";

  function textOf(target) {
    return (target.getAttribute("data-api-key") || target.textContent || "").trim();
  }

  function copyBySelection(target) {
    var selection = window.getSelection();
    var range = document.createRange();
    range.selectNodeContents(target);
    selection.removeAllRanges();
    selection.addRange(range);
    var ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (e) {
      ok = false;
    }
    return ok ? Promise.resolve() : Promise.reject(new Error("copy failed"));
  }

  function copy(target) {
    var text = textOf(target);
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () {
        return copyBySelection(target);
      });
    }
    return copyBySelection(target);
  }

  function report(button, message) {
    var status = button.parentNode && button.parentNode.querySelector(".copy-status");
    if (status) {
      status.textContent = message;
    }
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    button.textContent = message === "Copied to clipboard." ? "Copied" : label;
    window.setTimeout(function () {
      button.textContent = label;
    }, 2000);
  }

  document.querySelectorAll(".copy-button[data-copy-target]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var target = document.getElementById(button.getAttribute("data-copy-target"));
      if (!target) {
        return;
      }
      copy(target).then(
        function () {
          report(button, "Copied to clipboard.");
        },
        function () {
          report(button, "Copy failed: select the key and copy it by hand.");
        }
      );
    });
  });
})();
