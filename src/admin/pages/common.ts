/** Texts and helpers several pages share. */

/** SPEC §2 / the seed's form: said wherever TLS is enabled while only the demo certificate exists. */
export const TLS_DEMO_WARNING =
  'A security certificate/key has not yet been configured. Enabling TLS uses the demo certificate/key, which is not secure. ' +
  '(To configure a different certificate/key, see Network > Certificates or the certconfig command.)';
