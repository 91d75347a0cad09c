// The console's small behaviours. Everything works without it; it only adds comfort.
document.addEventListener("click", function (event) {
  var toggle = event.target.closest("[data-toggle-nav]");
  if (toggle) { document.body.classList.toggle("nav-open"); }
  var close = event.target.closest("[data-drawer-close]");
  if (close) {
    var host = document.getElementById("drawer");
    if (host && host.contains(close)) { event.preventDefault(); host.innerHTML = ""; }
  }
});
document.addEventListener("keydown", function (event) {
  if (event.key === "Escape") { var host = document.getElementById("drawer"); if (host) { host.innerHTML = ""; } }
});
// A drawer that succeeded asks to be closed through the HX-Trigger event "closeDrawer".
document.body && document.body.addEventListener("closeDrawer", function () {
  var host = document.getElementById("drawer"); if (host) { host.innerHTML = ""; }
});
// Confirmation dialogs (the Contracts page): a link with data-dialog-open opens its <dialog>; without
// JavaScript the same link opens the confirmation step as a page.
document.addEventListener("click", function (event) {
  var opener = event.target.closest("[data-dialog-open]");
  if (opener) {
    var dialog = document.getElementById(opener.getAttribute("data-dialog-open"));
    if (dialog && typeof dialog.showModal === "function") { event.preventDefault(); dialog.showModal(); }
    return;
  }
  var closer = event.target.closest("[data-dialog-close]");
  if (closer) {
    var open = closer.closest("dialog");
    if (open) { event.preventDefault(); open.close(); }
  }
});


// Row selection of the account table: "select all on this page", the selected count on the batch button.
// Without JavaScript the row checkboxes simply submit with the batch form.
(function () {
  function rowBoxes(form) { return Array.prototype.slice.call(form.querySelectorAll('input[name="accounts"]')); }
  function refresh() {
    var form = document.getElementById("batch-form");
    var count = 0;
    if (form) {
      var boxes = rowBoxes(form);
      boxes.forEach(function (box) {
        var row = box.closest("tr"); if (row) { row.classList.toggle("selected", box.checked); }
        if (box.checked) { count += 1; }
      });
      var all = form.querySelector("[data-select-all]");
      if (all) {
        all.hidden = boxes.length === 0;
        all.checked = boxes.length > 0 && count === boxes.length;
        all.indeterminate = count > 0 && count < boxes.length;
      }
    }
    document.querySelectorAll("[data-batch-count]").forEach(function (el) { el.textContent = count ? String(count) : ""; });
    document.querySelectorAll("[data-batch-button]").forEach(function (btn) {
      btn.disabled = count === 0;
      btn.title = count === 0 ? "Select accounts in the table first" : "";
    });
  }
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("[data-select-all]")) {
      var form = target.closest("form");
      rowBoxes(form).forEach(function (box) { box.checked = target.checked; });
    }
    if (target.closest && target.closest("#batch-form")) { refresh(); }
  });
  document.addEventListener("DOMContentLoaded", refresh);
  document.addEventListener("htmx:afterSettle", refresh);
})();
