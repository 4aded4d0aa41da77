(function () {
  var table = document.getElementById("models");
  if (!table) { return; }
  var body = table.tBodies[0];
  var filter = document.getElementById("filter");
  var count = document.getElementById("shown");
  function apply() {
    var q = filter.value.trim().toLowerCase();
    var shown = 0;
    Array.prototype.forEach.call(body.rows, function (row) {
      var hit = q === "" || row.textContent.toLowerCase().indexOf(q) !== -1;
      row.hidden = !hit;
      if (hit) { shown += 1; }
    });
    count.textContent = String(shown);
  }
  filter.addEventListener("input", apply);
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    var button = th.querySelector("button.sort");
    if (!button) { return; }
    button.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute("data-sort") || a.cells[col].textContent.trim();
        var y = b.cells[col].getAttribute("data-sort") || b.cells[col].textContent.trim();
        var nx = parseFloat(x), ny = parseFloat(y);
        var bothNumeric = x !== "" && y !== "" && !isNaN(nx) && !isNaN(ny);
        var emptyX = x === "", emptyY = y === "";
        if (emptyX !== emptyY) { return emptyX ? 1 : -1; }
        var c = bothNumeric ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
}());
