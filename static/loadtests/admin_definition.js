// The definition's admin form: only the chosen load model's fields show (closed: users and
// think times; open: the arrival rate), the stages sit beside the load model they shape, and
// the duration field says when the stages set it.
"use strict";
(function () {
  const CLOSED_ONLY = ["users", "think_time_min_s", "think_time_max_s"];
  const OPEN_ONLY = ["rate_rps"];

  function rowsOf(names) {
    return names
      .map((name) => document.querySelector(".form-row.field-" + name))
      .filter((row, index, all) => row && all.indexOf(row) === index);
  }

  function showModel() {
    const select = document.getElementById("id_load_model");
    if (!select) return;
    const open = select.value === "open";
    rowsOf(CLOSED_ONLY).forEach((row) => { row.hidden = open; });
    rowsOf(OPEN_ONLY).forEach((row) => { row.hidden = !open; });
  }

  function liveStages() {
    return Array.from(document.querySelectorAll("#stages-group tr.form-row"))
      .filter((row) => !row.classList.contains("empty-form"))
      .filter((row) => !(row.querySelector("input[name$='-DELETE']") || {}).checked)
      .map((row) => row.querySelector("input[name$='-duration_s']"))
      .filter((input) => input && input.value !== "");
  }

  function followStages() {
    const duration = document.getElementById("id_duration_s");
    if (!duration) return;
    const stages = liveStages();
    let note = document.getElementById("duration-from-stages");
    if (!note) {
      note = document.createElement("div");
      note.id = "duration-from-stages";
      note.className = "help";
      duration.parentNode.appendChild(note);
    }
    duration.readOnly = stages.length > 0;
    if (stages.length) {
      const total = stages.reduce((sum, input) => sum + Number(input.value || 0), 0);
      duration.value = String(total);
      note.textContent = "Set from the stages: " + total + " s (the sum of their durations).";
    } else {
      note.textContent = "";
    }
  }

  function moveStagesUp() {
    const stages = document.getElementById("stages-group");
    const model = document.querySelector("fieldset.load-model");
    if (stages && model) model.after(stages);
  }

  document.addEventListener("DOMContentLoaded", () => {
    moveStagesUp();
    showModel();
    followStages();
    const select = document.getElementById("id_load_model");
    if (select) select.addEventListener("change", showModel);
    const stages = document.getElementById("stages-group");
    if (stages) {
      stages.addEventListener("input", followStages);
      stages.addEventListener("change", followStages);
      stages.addEventListener("click", () => setTimeout(followStages, 0));
    }
  });
})();
