// MarketEdge additions to Piccolo Admin's page (see api/admin_ui/config.py).
// Piccolo Admin has no per-table read-only switch (upstream: piccolo-orm/piccolo_admin#138,
// read-only columns in TableConfig, open; PR #289 closed unmerged): mark the audit log's
// pages so that admin.css hides their write controls, and title a record "View", not
// "Edit". A flag's page links straight to its overrides.
(function () {
  "use strict";
  var READ_ONLY = ["audit_logs"];

  function route() {
    var match = /^#\/([^/?]+)(?:\/([^/?]+))?/.exec(window.location.hash) || [];
    return { table: match[1] || "", row: match[2] || "" };
  }

  function linkOverrides(here) {
    if (here.table !== "feature_flags" || !/^\d+$/.test(here.row)) return;
    var heading = document.querySelector(".inner h1");
    if (!heading || document.getElementById("flag-overrides-link")) return;
    var link = document.createElement("a");
    link.id = "flag-overrides-link";
    link.href = "#/feature_flag_overrides/?flag_id=" + here.row;
    link.textContent = "Overrides of this flag →";
    link.style.marginLeft = "1rem";
    link.style.fontSize = "0.9rem";
    heading.appendChild(link);
  }

  function mark() {
    var here = route();
    linkOverrides(here);
    var readOnly = READ_ONLY.indexOf(here.table) !== -1;
    document.documentElement.dataset.readOnly = readOnly ? "yes" : "no";
    if (!readOnly || !here.row) return;
    document.querySelectorAll("h1").forEach(function (heading) {
      if (/^Edit /.test(heading.textContent)) {
        heading.textContent = heading.textContent.replace(/^Edit /, "View ");
      }
    });
    document.querySelectorAll("form input, form select, form textarea").forEach(function (el) {
      if (!el.disabled) el.disabled = true;
    });
  }

  window.addEventListener("hashchange", mark);
  new MutationObserver(mark).observe(document.documentElement, {
    childList: true,
    subtree: true,
  });
  mark();
})();
