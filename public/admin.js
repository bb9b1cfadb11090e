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

// Typing a number into "Maximum of [ ]" chooses "Maximum of" (without JavaScript, the radio
// button says which one applies).
document.addEventListener('DOMContentLoaded', () => {
  const pairs = [['concurrency', 'concurrencyMode'], ['messagesPerConnection', 'messagesMode'], ['recipients', 'recipientsMode'], ['minutes', 'recipientsMode']];
  for (const [field, mode] of pairs) {
    const input = document.getElementById(field);
    const radio = document.querySelector(`input[type="radio"][name="${mode}"][value="max"]`);
    if (input && radio) input.addEventListener('input', () => { radio.checked = true; });
  }
});
