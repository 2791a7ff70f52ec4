// Phones start with the filter panel folded (see marketplace/index.html); a file, not an
// inline script, so the Content-Security-Policy can say script-src 'self'.
(() => {
  const panel = document.getElementById("filter-panel");
  const wide = matchMedia("(min-width: 900px)");
  const fit = () => { panel.open = wide.matches; };
  fit();
  wide.addEventListener("change", fit);
})();
