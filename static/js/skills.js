// ML Skills page: <button data-copy="#id"> copies that element's text (the endpoint URL, the
// API key, the curl line) and says so on the button for a moment.
(function () {
  function fallbackCopy(text) {
    // Pages served over plain http (not localhost) have no navigator.clipboard.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "copy-scratch";
    document.body.appendChild(area);
    area.select();
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    document.body.removeChild(area);
    return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }

  function say(button, word) {
    if (!button.dataset.label) button.dataset.label = button.textContent;
    button.textContent = word;
    clearTimeout(button.copyTimer);
    button.copyTimer = setTimeout(function () { button.textContent = button.dataset.label; }, 1500);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.dataset.copy);
    if (!source) return;
    copy(source.textContent.trim()).then(
      function () { say(button, "Copied"); },
      function () { say(button, "Select and copy"); }
    );
  });
})();
