// The console's only script (no inline script is allowed): ask before an irreversible action.
"use strict";
document.addEventListener("submit", function (event) {
  var button = event.submitter;
  if (button && button.classList.contains("danger") && !window.confirm("Confirmer cette action ?")) {
    event.preventDefault();
  }
});
// After a Pro Santé Connect login: continue to the console from our own page (the session cookie is
// SameSite=Strict, so it is sent on this same-site navigation, not on the provider's redirect).
document.addEventListener("DOMContentLoaded", function () {
  var next = document.querySelector("a[data-suivre]");
  if (next) { window.location.replace(next.getAttribute("href")); }
});
