// Phones start with the filter panel folded, and scroll the results into view after a filter
// changes them (see marketplace/index.html); a file, not an inline script, so the
// Content-Security-Policy can say script-src 'self'.
(() => {
  const panel = document.getElementById("filter-panel");
  const wide = matchMedia("(min-width: 900px)");
  const fit = () => { panel.open = wide.matches; };
  fit();
  wide.addEventListener("change", fit);
  // On a phone the open panel pushes the results a filter just changed off the screen:
  // bring them up (the panel stays open above, to pick more).
  document.body.addEventListener("htmx:afterSwap", (event) => {
    const source = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (wide.matches || !source || !source.closest("#filters")) return;
    const results = document.getElementById("results");
    if (results && results.getBoundingClientRect().top > innerHeight / 2) {
      results.scrollIntoView({ block: "start" });
    }
  });
})();
