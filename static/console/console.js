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
