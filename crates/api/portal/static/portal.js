/* hookfleet portal: copy buttons, confirm dialogs, auto-refresh, local times.
   Progressive enhancement only; every page works without it (except copying). */
(function () {
  "use strict";

  // ---- local times: <time datetime="RFC 3339"> -> toLocaleString(), ISO kept in title
  function localizeTimes(root) {
    var list = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < list.length; i++) {
      var t = list[i];
      if (t.hasAttribute("data-local")) continue;
      var iso = t.getAttribute("datetime");
      var d = new Date(iso);
      if (!iso || isNaN(d.getTime())) continue;
      t.title = iso;
      t.textContent = d.toLocaleString();
      t.setAttribute("data-local", "");
    }
  }

  // ---- clipboard
  function copyWithSelection(text) {
    var ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.style.position = "fixed";
    ta.style.top = "-1000px";
    document.body.appendChild(ta);
    ta.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(ta);
    return ok;
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () {
        if (!copyWithSelection(text)) throw new Error("copy failed");
      });
    }
    return copyWithSelection(text) ? Promise.resolve() : Promise.reject(new Error("copy failed"));
  }

  function showCopied(btn, label) {
    if (!btn.hasAttribute("data-label")) btn.setAttribute("data-label", btn.textContent);
    clearTimeout(btn._copyTimer);
    btn.textContent = label;
    btn.classList.add("copied");
    btn._copyTimer = setTimeout(function () {
      btn.textContent = btn.getAttribute("data-label");
      btn.classList.remove("copied");
    }, 2000);
  }

  function onCopy(btn) {
    var text = btn.getAttribute("data-copy");
    if (text === null) {
      var target = document.getElementById(btn.getAttribute("data-copy-target"));
      if (!target) text = "";
      else if (target.tagName === "INPUT" || target.tagName === "TEXTAREA") text = target.value;
      else text = target.textContent;
    }
    copyText(text).then(
      function () { showCopied(btn, "Copied"); },
      function () { showCopied(btn, "Copy failed"); }
    );
  }

  document.addEventListener("click", function (ev) {
    var el = ev.target instanceof Element ? ev.target : null;
    if (!el) return;

    var copyBtn = el.closest("[data-copy], [data-copy-target]");
    if (copyBtn) {
      ev.preventDefault();
      onCopy(copyBtn);
      return;
    }

    var confirmBtn = el.closest("[data-confirm]");
    if (confirmBtn && !window.confirm(confirmBtn.getAttribute("data-confirm"))) {
      ev.preventDefault();
      ev.stopPropagation();
    }
  });

  // ---- auto-refresh: <div id="x" data-refresh="url" data-refresh-ms="2000">
  var REFRESH_FOR_MS = 60000;

  function openDetailsKeys(el) {
    var keys = [];
    var list = el.querySelectorAll("details");
    for (var i = 0; i < list.length; i++) {
      if (list[i].open) keys.push(detailsKey(list[i], i));
    }
    return keys;
  }
  function detailsKey(d, i) {
    var row = d.closest("[data-id], [data-attempt]");
    return row ? (row.getAttribute("data-id") || "") + "/" + (row.getAttribute("data-attempt") || "") : "#" + i;
  }

  function startRefresh(el) {
    var id = el.id;
    var url = el.getAttribute("data-refresh");
    if (!id || !url) return;
    var every = parseInt(el.getAttribute("data-refresh-ms"), 10);
    if (!(every >= 500)) every = 2000;
    var stopAt = Date.now() + REFRESH_FOR_MS;
    var busy = false;

    function stop(timer) { clearInterval(timer); }

    var timer = setInterval(function () {
      if (Date.now() > stopAt) { stop(timer); return; }
      if (busy || document.hidden) return;
      busy = true;
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "text/html" } })
        .then(function (res) {
          if (!res.ok) throw new Error("HTTP " + res.status);
          return res.text();
        })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById(id);
          var current = document.getElementById(id);
          if (!fresh || !current) { stop(timer); return; }
          var open = openDetailsKeys(current);
          current.innerHTML = fresh.innerHTML;
          var list = current.querySelectorAll("details");
          for (var i = 0; i < list.length; i++) {
            if (open.indexOf(detailsKey(list[i], i)) !== -1) list[i].open = true;
          }
          localizeTimes(current);
          // The server stops asking for refreshes (e.g. the delivery is no longer pending).
          if (!fresh.hasAttribute("data-refresh")) {
            current.removeAttribute("data-refresh");
            stop(timer);
          }
        })
        .catch(function () { /* keep the current content; try again next tick */ })
        .then(function () { busy = false; });
    }, every);
  }

  function init() {
    document.documentElement.classList.add("js");
    localizeTimes(document);
    var list = document.querySelectorAll("[data-refresh]");
    for (var i = 0; i < list.length; i++) startRefresh(list[i]);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
