// Passkeys (WebAuthn) for the Servicekonto: adding a passkey on /konto/passkeys, and the
// "Mit Passkey anmelden" button of the login and second-factor pages.
//
// Progressive enhancement: the passkey parts of the pages are `hidden` and this script shows
// them only where the browser has WebAuthn. Without JavaScript the pages are plain forms.
// The server speaks JSON with binary values as base64url strings (webauthn-rs); the CSRF
// token travels in the X-CSRF-Token header. Texts come from data attributes (the server
// renders them in the page's language), so this file holds no words of its own.
(function () {
  'use strict';

  if (window.rathausPasskeys) return; // included twice: set up once
  window.rathausPasskeys = true;

  var supported =
    typeof window.PublicKeyCredential === 'function' &&
    !!navigator.credentials &&
    typeof navigator.credentials.create === 'function' &&
    typeof navigator.credentials.get === 'function';

  function fromB64url(s) {
    var b64 = s.replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) b64 += '=';
    var bin = atob(b64);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes.buffer;
  }

  function toB64url(buf) {
    var bytes = new Uint8Array(buf);
    var bin = '';
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  // JSON null means "absent" to the server; WebAuthn's dictionaries want it left out.
  function dropNulls(value) {
    if (Array.isArray(value)) return value.map(dropNulls);
    if (value && typeof value === 'object') {
      var out = {};
      Object.keys(value).forEach(function (k) {
        if (value[k] !== null && value[k] !== undefined) out[k] = dropNulls(value[k]);
      });
      return out;
    }
    return value;
  }

  function credentialList(list) {
    return (list || []).map(function (c) {
      var d = { type: c.type, id: fromB64url(c.id) };
      if (c.transports) d.transports = c.transports;
      return d;
    });
  }

  function creationOptions(options) {
    var pk = dropNulls(options.publicKey);
    pk.challenge = fromB64url(pk.challenge);
    pk.user.id = fromB64url(pk.user.id);
    if (pk.excludeCredentials) pk.excludeCredentials = credentialList(pk.excludeCredentials);
    return { publicKey: pk };
  }

  function requestOptions(options) {
    var pk = dropNulls(options.publicKey);
    pk.challenge = fromB64url(pk.challenge);
    if (pk.allowCredentials) pk.allowCredentials = credentialList(pk.allowCredentials);
    return { publicKey: pk };
  }

  function registrationJSON(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: toB64url(r.attestationObject),
        clientDataJSON: toB64url(r.clientDataJSON),
        transports: typeof r.getTransports === 'function' ? r.getTransports() : undefined,
      },
      extensions: {},
    };
  }

  function assertionJSON(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: toB64url(r.authenticatorData),
        clientDataJSON: toB64url(r.clientDataJSON),
        signature: toB64url(r.signature),
        userHandle: r.userHandle ? toB64url(r.userHandle) : null,
      },
      extensions: {},
    };
  }

  // POSTs JSON; resolves to the parsed answer, rejects with an Error whose message is the
  // server's text (and `redirect` if the server wants the browser elsewhere, e.g. to log in).
  function post(url, csrf, body) {
    return fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(body),
    }).then(function (res) {
      return res
        .json()
        .catch(function () {
          return {};
        })
        .then(function (data) {
          if (res.ok) return data;
          var err = new Error(data.message || '');
          err.redirect = data.redirect;
          throw err;
        });
    });
  }

  // Runs one ceremony inside `box` (the element with the data attributes): shows progress,
  // shows errors in its alert region, and follows the server's redirect at the end.
  function ceremony(box, control, run) {
    var error = box.querySelector('[data-passkey-error]');
    var status = box.querySelector('[data-passkey-status]');
    if (control.disabled) return;
    control.disabled = true;
    if (error) error.textContent = '';
    if (status) status.textContent = box.dataset.msgWorking || '';
    run()
      .then(function (data) {
        window.location.assign(data.redirect);
      })
      .catch(function (err) {
        if (err && err.redirect) {
          window.location.assign(err.redirect);
          return;
        }
        var text;
        if (err && (err.name === 'NotAllowedError' || err.name === 'AbortError')) {
          text = box.dataset.msgCancelled;
        } else if (err && err.name === 'InvalidStateError') {
          text = box.dataset.msgFailed;
        } else {
          text = (err && err.message) || box.dataset.msgFailed;
        }
        if (status) status.textContent = '';
        if (error) error.textContent = text;
        control.disabled = false;
      });
  }

  function setUpLogin(box) {
    var button = box.querySelector('[data-passkey-button]');
    if (!button) return;
    box.hidden = false;
    button.addEventListener('click', function () {
      var mode = box.dataset.mode;
      var next = document.querySelector('input[name="weiter"]');
      var weiter = next ? next.value : '';
      var csrf = box.dataset.csrf;
      ceremony(box, button, function () {
        return post(box.dataset.start, csrf, { mode: mode }).then(function (challenge) {
          return navigator.credentials
            .get(requestOptions(challenge.options))
            .then(function (cred) {
              return post(box.dataset.finish, csrf, {
                mode: mode,
                state: challenge.state,
                credential: assertionJSON(cred),
                weiter: weiter,
              });
            });
        });
      });
    });
  }

  function setUpRegistration(box) {
    var form = box.querySelector('[data-passkey-register-form]');
    if (!form) return;
    var unsupported = document.querySelector('[data-passkey-unsupported]');
    if (unsupported) unsupported.hidden = true;
    box.hidden = false;
    var submit = form.querySelector('button[type="submit"]');
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var name = form.elements.name ? form.elements.name.value : '';
      var csrf = box.dataset.csrf;
      ceremony(box, submit, function () {
        return post(box.dataset.start, csrf, {}).then(function (challenge) {
          return navigator.credentials
            .create(creationOptions(challenge.options))
            .then(function (cred) {
              return post(box.dataset.finish, csrf, {
                state: challenge.state,
                credential: registrationJSON(cred),
                name: name,
              });
            });
        });
      });
    });
  }

  function init() {
    if (!supported) return;
    document.querySelectorAll('[data-passkey-login]').forEach(setUpLogin);
    document.querySelectorAll('[data-passkey-register]').forEach(setUpRegistration);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
