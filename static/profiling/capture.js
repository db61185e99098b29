// A queued or running capture's page: poll its small status view every second (every 5 s
// while the tab is hidden) and reload when the capture is done or failed.
(function () {
  "use strict";

  const page = document.getElementById("capture-page");
  const url = page.dataset.statusUrl;
  const badge = document.getElementById("capture-status");

  function next() {
    setTimeout(poll, document.hidden ? 5000 : 1000);
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : null))
      .then(function (state) {
        if (!state) return next();
        badge.textContent = state.status;
        badge.className = "badge " + state.status;
        if (!state.active) {
          window.location.reload();
          return;
        }
        next();
      })
      .catch(next);
  }

  next();
})();
