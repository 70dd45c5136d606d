(function () {
  "use strict";
  var list = document.getElementById("notes");
  fetch("/api/notes/")
    .then(function (r) { return r.json(); })
    .then(function (notes) {
      if (!Array.isArray(notes) || notes.length === 0) return;
      list.innerHTML = "";
      notes.forEach(function (n) {
        var li = document.createElement("li");
        li.textContent = n.title;
        list.appendChild(li);
      });
    });
})();
//# sourceMappingURL=app.js.map
