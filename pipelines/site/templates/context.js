(function () {
  var select = document.getElementById("ctx-select");
  if (!select) { return; }
  var tables = document.querySelectorAll("[data-context]");
  function show() {
    Array.prototype.forEach.call(tables, function (t) {
      t.hidden = t.getAttribute("data-context") !== select.value;
    });
  }
  select.addEventListener("change", show);
  show();
}());
