// Up/down buttons on each step of a definition's admin form: they move the step and
// renumber every step's `order` field, so that a flow runs the steps as shown.
(function () {
  "use strict";
  function groupOf() { return document.getElementById("steps-group"); }
  function steps(group) {
    return Array.from(group.querySelectorAll(".inline-related")).filter(function (el) {
      return !el.classList.contains("empty-form") && el.id !== "steps-empty";
    });
  }
  function renumber(group) {
    steps(group).forEach(function (el, index) {
      var order = el.querySelector("input[name$='-order']");
      if (order) { order.value = index; }
    });
  }
  function move(el, up) {
    var group = groupOf();
    var list = steps(group);
    var index = list.indexOf(el);
    var other = list[up ? index - 1 : index + 1];
    if (!other) { return; }
    if (up) { other.parentNode.insertBefore(el, other); } else { other.parentNode.insertBefore(other, el); }
    renumber(group);
  }
  function addButtons(el) {
    var title = el.querySelector("h3");
    if (!title || title.querySelector(".step-move")) { return; }
    [["↑", true, "Move this step up"], ["↓", false, "Move this step down"]].forEach(function (spec) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "step-move";
      button.textContent = spec[0];
      button.title = spec[2];
      button.addEventListener("click", function (event) { event.preventDefault(); move(el, spec[1]); });
      title.appendChild(button);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var group = groupOf();
    if (!group) { return; }
    steps(group).forEach(addButtons);
    document.addEventListener("formset:added", function (event) {
      if (event.target && event.target.closest && event.target.closest("#steps-group")) {
        addButtons(event.target);
        renumber(group);
      }
    });
  });
})();
