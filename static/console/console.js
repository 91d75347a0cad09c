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
