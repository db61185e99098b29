// A step's headers as name/value rows (loadtests.admin.HeaderRowsWidget): add and remove rows.
// Delegated from the document, so rows of steps added by "Add another step" work too.
"use strict";
(function () {
  function blankRow(list) {
    const rows = list.querySelectorAll(".header-row");
    const row = rows[rows.length - 1].cloneNode(true);
    row.querySelectorAll("input").forEach((input) => { input.value = ""; });
    return row;
  }
  document.addEventListener("click", (event) => {
    const button = event.target.closest(".header-add, .header-remove");
    if (!button) return;
    event.preventDefault();
    const list = button.closest(".header-rows");
    if (button.classList.contains("header-add")) {
      list.insertBefore(blankRow(list), button);
      return;
    }
    const row = button.closest(".header-row");
    if (list.querySelectorAll(".header-row").length > 1) {
      row.remove();
    } else {
      row.querySelectorAll("input").forEach((input) => { input.value = ""; });
    }
  });
})();
