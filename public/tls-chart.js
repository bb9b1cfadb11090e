// Monitor > TLS Connections: the graph, from the API's JSON (the page's table has the figures
// without JavaScript).
document.addEventListener('DOMContentLoaded', async () => {
  const el = document.getElementById('tls-chart');
  if (!el || typeof uPlot === 'undefined') return;
  const r = await fetch(el.dataset.api, { credentials: 'same-origin' });
  if (!r.ok) return;
  const data = await r.json();
  const xs = data.series.map((p) => p.start / 1000);
  const tls = data.series.map((p) => p.tls);
  const clear = data.series.map((p) => p.clear);
  el.removeAttribute('aria-hidden');
  el.setAttribute('role', 'img');
  el.setAttribute('aria-label', `TLS sessions ${tls.reduce((a, b) => a + b, 0)}, clear connections ${clear.reduce((a, b) => a + b, 0)}`);
  new uPlot(
    {
      width: Math.min(el.clientWidth || 900, 1100),
      height: 260,
      series: [{}, { label: 'TLS sessions', stroke: '#1f5fa8', fill: 'rgba(31,95,168,0.12)' }, { label: 'Clear connections', stroke: '#a4161a' }],
      axes: [{}, { label: 'connections' }],
      scales: { x: { time: true } },
    },
    [xs, tls, clear],
    el,
  );
});
