// The console's only script (no inline script is allowed): ask before an irreversible action.
"use strict";
document.addEventListener("submit", function (event) {
  var button = event.submitter;
  if (button && button.classList.contains("danger") && !window.confirm("Confirmer cette action ?")) {
    event.preventDefault();
  }
});
