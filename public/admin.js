// Postern administration: the page works without this file; it only shows the demo-certificate
// warning as soon as a TLS setting is chosen (without it, the warning shows after Submit).
document.addEventListener('DOMContentLoaded', () => {
  const tls = document.getElementById('tls');
  const warning = document.getElementById('tls-warning');
  if (!tls || !warning || tls.dataset.demo !== 'yes') return;
  const update = () => {
    const v = tls.value === 'default' ? tls.dataset.defaultTls : tls.value;
    warning.hidden = v === 'no';
  };
  tls.addEventListener('change', update);
});
