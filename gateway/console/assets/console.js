// tongban console: light progressive enhancement. Every page works without
// this script except "verify inclusion", which is a check done in the
// browser on purpose (the auditor need not trust the gateway's own word).
// SM3 is sm-crypto's (assets/vendor/sm3.js, vendored by
// console-tests/vendor-sm3.mjs from the npm package; no network at run time).
'use strict';

(function () {
  // --- bytes ---------------------------------------------------------------
  function b64ToBytes(s) {
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function hexToBytes(h) {
    var out = new Uint8Array(h.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(h.substr(2 * i, 2), 16);
    return out;
  }
  function concat(prefix, a, b) {
    var out = new Uint8Array(1 + a.length + (b ? b.length : 0));
    out[0] = prefix;
    out.set(a, 1);
    if (b) out.set(b, 1 + a.length);
    return out;
  }
  function equal(a, b) {
    if (a.length !== b.length) return false;
    var d = 0;
    for (var i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
  }
  function sm3(bytes) { return hexToBytes(window.sm3(bytes)); }

  // --- RFC 9162 §2.1.3.2 inclusion proof, SM3 with RFC 6962 prefixes ----
  // leaf = SM3(0x00 ‖ entry), node = SM3(0x01 ‖ left ‖ right)
  function rootFromInclusion(index, size, leaf, path) {
    if (index >= size) throw new Error('index beyond the tree');
    var fn = index, sn = size - 1, r = leaf;
    for (var i = 0; i < path.length; i++) {
      var p = path[i];
      if (sn === 0) throw new Error('proof too long');
      if (fn % 2 === 1 || fn === sn) {
        r = sm3(concat(0x01, p, r));
        if (fn % 2 === 0) {
          while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
        }
      } else {
        r = sm3(concat(0x01, r, p));
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    if (sn !== 0) throw new Error('proof too short');
    return r;
  }

  // The checkpoint body: origin, size, base64 root (exchange-log.md).
  function parseCheckpoint(note) {
    var lines = note.split('\n');
    if (lines.length < 3) throw new Error('checkpoint has no body');
    var size = Number(lines[1]);
    if (!/^[0-9]+$/.test(lines[1]) || !Number.isSafeInteger(size)) throw new Error('checkpoint size');
    return { origin: lines[0], size: size, root: b64ToBytes(lines[2]) };
  }

  function verifyInclusion(data) {
    var cp = parseCheckpoint(data.checkpoint);
    if (cp.size !== data.size) throw new Error('the proof is not for the checkpoint\'s size');
    var leaf = sm3(concat(0x00, b64ToBytes(data.entry)));
    var path = (data.hashes || []).map(b64ToBytes);
    return { ok: equal(rootFromInclusion(data.index, data.size, leaf, path), cp.root), size: cp.size };
  }
  window.tongbanVerifyInclusion = verifyInclusion;

  function fmt(s, arg) { return s.replace('%s', arg); }

  document.addEventListener('click', function (ev) {
    var btn = ev.target.closest('button[data-verify-index]');
    if (!btn) return;
    var out = document.querySelector('[data-verify-result="' + btn.dataset.verifyIndex + '"]');
    out.className = 'verify-result busy';
    out.textContent = btn.dataset.busyText;
    btn.disabled = true;
    fetch(btn.dataset.url, { credentials: 'same-origin', headers: { 'Accept': 'application/json' } })
      .then(function (resp) {
        return resp.json().then(function (body) {
          if (!resp.ok) throw new Error(body.detail || body.code || resp.status);
          return body;
        });
      })
      .then(function (data) {
        var res = verifyInclusion(data);
        out.className = 'verify-result ' + (res.ok ? 'ok' : 'bad');
        out.textContent = res.ok ? fmt(btn.dataset.okText, String(res.size)) : btn.dataset.badText;
      })
      .catch(function (err) {
        out.className = 'verify-result bad';
        out.textContent = fmt(btn.dataset.errText, err.message);
      })
      .finally(function () { btn.disabled = false; });
  });

  // --- confirmations for consequential actions ---------------------------
  document.addEventListener('submit', function (ev) {
    var msg = ev.target.dataset && ev.target.dataset.confirm;
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });

  // --- sign-in page: follow the link once the challenge is signed --------
  var waiting = document.querySelector('[data-poll]');
  if (waiting) {
    var timer = setInterval(function () {
      fetch(waiting.dataset.poll, { credentials: 'same-origin' })
        .then(function (r) { return r.json(); })
        .then(function (s) {
          if (s.state === 'signed' && s.link) { clearInterval(timer); window.location.assign(s.link); }
          if (s.state === 'expired') { clearInterval(timer); waiting.textContent = waiting.dataset.expiredText; }
        })
        .catch(function () {});
    }, 1500);
  }
})();
