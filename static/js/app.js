// Small behaviours htmx does not cover: upload progress, drag and drop, folder paths.
(function () {
  // A folder chosen in the browser keeps its sub-folders: send each file's relative path.
  document.addEventListener("htmx:configRequest", function (event) {
    var form = event.detail.elt;
    if (!form.matches || !form.matches("form[data-upload]")) return;
    var params = event.detail.formData || event.detail.parameters;
    var files = [];
    form.querySelectorAll("input[type=file][name=files]").forEach(function (input) {
      Array.prototype.forEach.call(input.files, function (f) { files.push(f); });
    });
    if (files.length && params && params.append) {
      params.delete && params.delete("paths");
      files.forEach(function (f) { params.append("paths", f.webkitRelativePath || f.name); });
    }
  });

  // Upload progress on the form's <progress>; disable the button while sending.
  document.addEventListener("htmx:xhr:progress", function (event) {
    var form = event.target.closest && event.target.closest("form[data-upload]");
    if (!form || !event.detail.lengthComputable) return;
    var bar = form.querySelector("progress");
    if (bar) { bar.hidden = false; bar.value = Math.round(100 * event.detail.loaded / event.detail.total); }
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    var button = event.target.querySelector && event.target.querySelector("button");
    if (button && event.target.matches("form[data-upload]")) { button.disabled = true; button.dataset.label = button.textContent; button.textContent = "Uploading…"; }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var button = event.target.querySelector && event.target.querySelector("button[disabled]");
    if (button && button.dataset.label) { button.disabled = false; button.textContent = button.dataset.label; }
  });

  // <form data-confirm="Delete …?">: ask before submitting (inline onsubmit is refused by the CSP).
  document.addEventListener("submit", function (event) {
    var message = event.target.dataset && event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });

  // Drag and drop onto a dropzone fills its file input.
  function bind(zone) {
    var input = zone.querySelector("input[type=file]");
    var text = zone.querySelector(".dropzone-text");
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (e) {
      if (!e.dataTransfer || !e.dataTransfer.files.length) return;
      input.files = e.dataTransfer.files;
      input.dispatchEvent(new Event("change", { bubbles: true }));
    });
    input.addEventListener("change", function () {
      if (!text) return;
      var n = input.files.length;
      text.textContent = n === 1 ? input.files[0].name : n + " files chosen";
    });
  }
  // <input type=file data-fills-name="name">: a chosen file's name (without extension, made a
  // valid identifier) fills the form's name field, unless the user typed a name of their own.
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("input[type=file][data-fills-name]") || !input.files.length) return;
    var field = input.form && input.form.elements[input.dataset.fillsName];
    if (!field || (field.value && field.value !== field.dataset.filled)) return;
    var name = input.files[0].name.replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9_]+/g, "_").replace(/^_+|_+$/g, "");
    if (/^[0-9]/.test(name)) name = "_" + name;
    field.value = field.dataset.filled = name;
  });

  function bindAll(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("[data-dropzone]").forEach(function (zone) {
      if (!zone.dataset.bound) { zone.dataset.bound = "1"; bind(zone); }
    });
  }
  // A run's live log (#log-text) opens at its last line and follows new output, unless the
  // user scrolled up to read: then it stays where they are until they scroll back down.
  function followLog(log) {
    var pinned = true;
    function atBottom() { return log.scrollHeight - log.scrollTop - log.clientHeight < 4; }
    log.scrollTop = log.scrollHeight;
    log.addEventListener("scroll", function () { pinned = atBottom(); });
    new MutationObserver(function () {
      if (pinned) log.scrollTop = log.scrollHeight;
    }).observe(log, { childList: true, characterData: true, subtree: true });
  }

  // The pipelines list's Compare button (of form#compare-runs): on for 2 to data-most ticks.
  function comparePicks() {
    var form = document.getElementById("compare-runs");
    var hint = document.querySelector(".compare-hint");
    if (!form || !hint) return;
    var ticked = document.querySelectorAll("input[form=compare-runs]:checked").length;
    var most = Number(form.dataset.most);
    document.querySelector("button[form=compare-runs]").disabled = ticked < 2 || ticked > most;
    hint.textContent = ticked > most
      ? "At most " + most + " runs: " + ticked + " ticked"
      : ticked === 1 ? "Tick one more run"
      : ticked ? ticked + " runs ticked" : "Tick runs to compare";
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("input[form=compare-runs]")) comparePicks();
  });

  document.addEventListener("DOMContentLoaded", function () {
    bindAll(document);
    var log = document.getElementById("log-text");
    if (log) followLog(log);
    comparePicks();
  });
  document.addEventListener("htmx:load", function (event) { bindAll(event.target); comparePicks(); });
})();
