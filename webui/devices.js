// Portcullis web UI: the Devices page (LAN devices from DHCP leases and the neighbour table,
// address reservations, the DHCP server's settings) and the device picker of the forward
// form. Uses the helpers app.js shares; text is always set with textContent.
'use strict';
(function () {
  var P = window.Portcullis;
  if (!P) return;
  var h = P.h, api = P.api, field = P.field, val = P.val;

  function copy(o) { return JSON.parse(JSON.stringify(o)); }
  function label(d) { return d.name || d.hostname || d.mac; }
  // A host name dnsmasq accepts for a reservation, from what the device calls itself.
  function hostName(d) {
    var n = String(d.name || d.hostname || '').toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
    return n || 'device-' + d.mac.replace(/:/g, '').slice(6);
  }
  function ago(now, t) {
    if (!t) return 'never';
    var s = Math.max(0, now - t);
    return s < 60 ? 'just now' : P.dur(s - s % 60).replace(/ 0s$/, '') + ' ago';
  }
  // Issues of a PUT /dhcp shown in `form`; `map` turns a field path into a form field.
  function refused(form, r, map) {
    P.showIssues(form, (r.body.issues || [{ field: '', message: r.body.error }]).map(function (i) {
      return { severity: i.severity, field: map(i.field || ''), message: (i.field ? i.field + ': ' : '') + i.message };
    }));
  }
  // Sends the whole section with a change made by `change(section)`.
  // The errors of a refusal as one line (warnings left out).
  function errors(r) {
    return (r.body.issues || []).filter(function (i) { return i.severity !== 'warning'; })
      .map(function (i) { return i.field + ': ' + i.message; }).join(' ') || r.body.error;
  }
  function saveDhcp(dhcp, tag, change) {
    var next = copy(dhcp);
    change(next);
    return api('PUT', '/dhcp', next, null, tag);
  }

  // ---- reservation form ------------------------------------------------------
  function reserveForm(d, dhcp, tag, done) {
    var old = dhcp.reservations && dhcp.reservations.filter(function (r) { return r.mac === d.mac; })[0];
    var f = h('form', { 'class': 'card', id: 'reserve-form', novalidate: true },
      h('h2', { text: (old ? 'Edit the reservation of ' : 'Reserve an address for ') + label(d) }),
      h('p', { 'class': 'hint', text: 'MAC ' + d.mac + '. The DHCP server always gives this device the address below; forwards to the device follow it.' }),
      field('Name', 'name', { form: 'res', value: old ? old.name : hostName(d), hint: 'Letters, digits and -; the device is NAME.' + (dhcp.domain || 'lan') + ' in DNS.' }),
      field('Address', 'address', { form: 'res', value: old ? old.address : d.address || '', placeholder: '192.168.1.10' }),
      field('Comment', 'comment', { form: 'res', value: old ? old.comment : '' }),
      h('span', { 'class': 'err', 'data-for': '_' }),
      h('div', { 'class': 'row' }, h('button', { type: 'submit', id: 'reserve-submit', text: old ? 'Save' : 'Reserve' }),
        h('button', { type: 'button', 'class': 'secondary', text: 'Cancel', onclick: function () { P.route(); } })));
    f.addEventListener('submit', function (e) {
      e.preventDefault();
      P.clearErrors(f);
      var res = { name: val(f, 'name'), mac: d.mac, address: val(f, 'address') };
      if (val(f, 'comment')) res.comment = val(f, 'comment');
      saveDhcp(dhcp, tag, function (n) {
        n.reservations = (n.reservations || []).filter(function (r) { return r.mac !== d.mac; }).concat([res]);
      }).then(function (r) {
        if (P.conflict(r, 'The DHCP settings')) return;
        if (r.ok) { P.flash((old ? 'Reservation of ' : 'Reserved ') + res.address + ' for ' + res.name + '.'); done(); }
        else refused(f, r, function (x) { var m = /\.(name|address|comment|mac)$/.exec(x); return m ? m[1] : x; });
      });
    });
    return f;
  }

  // ---- DHCP settings ---------------------------------------------------------
  var DHCP_FIELDS = { 'dhcp.enabled': 'enabled', 'dhcp.start': 'start', 'dhcp.end': 'end', 'dhcp.lease_secs': 'lease_secs', 'dhcp.domain': 'domain' };
  function dhcpForm(dhcp, tag) {
    var c = dhcp || { enabled: true, start: '', end: '', lease_secs: 43200, domain: 'lan' };
    var f = h('form', { 'class': 'card', id: 'dhcp-form', novalidate: true },
      h('h2', { text: 'DHCP server' }),
      dhcp ? null : h('p', { 'class': 'hint', id: 'dhcp-none', text: 'No DHCP server is configured: devices need fixed addresses. Fill in the pool to turn it on.' }),
      field('Hand out addresses', 'enabled', { form: 'dhcp', type: 'checkbox', value: c.enabled, hint: 'Off: no addresses are handed out; DNS is served either way.' }),
      field('Pool start', 'start', { form: 'dhcp', value: c.start, placeholder: '192.168.1.100' }),
      field('Pool end', 'end', { form: 'dhcp', value: c.end, placeholder: '192.168.1.249' }),
      field('Lease time (seconds)', 'lease_secs', { form: 'dhcp', value: c.lease_secs, inputmode: 'numeric', hint: '43200 = 12 hours; at least 120.' }),
      field('Local domain', 'domain', { form: 'dhcp', value: c.domain, hint: 'Devices are NAME.' + c.domain + ' in DNS.' }),
      h('span', { 'class': 'err', 'data-for': '_' }),
      h('div', { 'class': 'row' }, h('button', { type: 'submit', id: 'dhcp-submit', text: 'Save' }),
        dhcp ? P.twoStep(h('button', { type: 'button', 'class': 'danger', id: 'dhcp-remove', text: 'Remove the DHCP server' }), 'Remove the DHCP server', function () {
          api('DELETE', '/dhcp', null, null, tag).then(function (r) {
            if (P.conflict(r, 'The DHCP settings')) return;
            P.flash(r.ok ? 'The DHCP server was removed.' : errors(r), r.ok ? 'good' : 'bad');
            if (r.ok) P.route();
          });
        }) : null));
    f.addEventListener('submit', function (e) {
      e.preventDefault();
      P.clearErrors(f);
      saveDhcp(c, tag, function (n) {
        n.enabled = f.elements.enabled.checked;
        n.start = val(f, 'start'); n.end = val(f, 'end'); n.domain = val(f, 'domain');
        n.lease_secs = P.port(val(f, 'lease_secs'));
      }).then(function (r) {
        if (P.conflict(r, 'The DHCP settings')) return;
        if (r.ok) { P.flash('DHCP settings saved.'); P.route(); } else refused(f, r, function (x) { return DHCP_FIELDS[x] || x; });
      });
    });
    return f;
  }

  // ---- the page --------------------------------------------------------------
  function devicesPage() {
    return Promise.all([api('GET', '/devices'), api('GET', '/dhcp')]).then(function (rs) {
      if (!rs[0].ok || !rs[1].ok) {
        P.show('Devices', h('h1', { text: 'Devices' }), h('p', { 'class': 'banner bad', text: rs[0].body.error || rs[1].body.error || 'The router did not answer.' }));
        return;
      }
      var now = rs[0].body.now, dhcp = rs[1].body.dhcp, tag = rs[1].etag || rs[1].body.etag;
      var slot = h('div', { id: 'reserve-slot' });
      function open(d) {
        slot.textContent = '';
        slot.appendChild(reserveForm(d, dhcp, tag, function () { P.route(); }));
        slot.querySelector('input').focus();
      }
      var rows = rs[0].body.devices.map(function (d) {
        return h('tr', { 'data-mac': d.mac },
          P.td('Device', [h('strong', { text: label(d) }), d.name && d.hostname && d.hostname !== d.name ? h('span', { 'class': 'muted', text: ' (' + d.hostname + ')' }) : null]),
          P.td('MAC', h('code', { text: d.mac })),
          P.td('Address', d.address || '–'),
          P.td('Reserved', d.reserved || '–'),
          P.td('Seen', d.online ? h('span', { 'class': 'online', text: 'online' }) : ago(now, d.last_seen)),
          P.td('Lease left', d.lease_expires ? P.dur(Math.max(0, d.lease_expires - now)) : '–'),
          P.td('', h('span', { 'class': 'actions' },
            h('button', { type: 'button', 'class': 'secondary', 'data-reserve': d.mac, disabled: !dhcp, text: d.reserved ? 'Edit' : 'Reserve', onclick: function () { open(d); } }),
            d.reserved ? P.twoStep(h('button', { type: 'button', 'class': 'danger', 'data-unreserve': d.mac, text: 'Remove reservation' }), 'Remove reservation', function () {
              saveDhcp(dhcp, tag, function (n) { n.reservations = n.reservations.filter(function (r) { return r.mac !== d.mac; }); }).then(function (r) {
                if (P.conflict(r, 'The DHCP settings')) return;
                if (r.ok) { P.flash('Reservation of ' + label(d) + ' removed.'); P.route(); }
                else P.flash(errors(r), 'bad');
              });
            }) : null)));
      });
      P.show('Devices', h('h1', { text: 'Devices' }),
        h('p', { 'class': 'muted', text: 'LAN devices the router knows: from DHCP leases, from recent traffic (the neighbour table) and from reservations.' }),
        dhcp ? null : h('p', { 'class': 'hint', text: 'Reserving addresses needs the DHCP server (below).' }),
        rows.length ? h('table', { 'class': 'stack', id: 'devices' },
          h('thead', null, h('tr', null, ['Device', 'MAC', 'Address', 'Reserved', 'Seen', 'Lease left', ''].map(function (t) { return h('th', { text: t }); }))),
          h('tbody', null, rows)) : h('p', { 'class': 'muted', id: 'devices-none', text: 'No device yet.' }),
        slot, dhcpForm(dhcp, tag));
    });
  }

  // ---- the forward form's device picker -------------------------------------
  // `ctx`: {devices, dhcp, tag} read with the forward list. Returns the picker's element
  // and `finish(form, body)`, a promise of whether to save: it sets `device` (or the
  // typed address) and first makes the reservation the owner asked for.
  P.devicePicker = function (o, ctx) {
    var devs = ctx.devices || [], byMac = {};
    devs.forEach(function (d) { byMac[d.mac] = d; });
    var sel = h('select', { id: 'fwd-device', name: 'device' }, h('option', { value: '', text: 'Type an address below' }),
      devs.map(function (d) {
        return h('option', { value: d.mac, text: label(d) + (d.address ? ' (' + d.address + ')' : '') + ' ' + d.mac });
      }));
    var note = h('p', { 'class': 'hint', id: 'fwd-follows' });
    var offer = h('div', { id: 'fwd-reserve-offer', hidden: true },
      h('label', { 'for': 'fwd-reserve' }, h('input', { type: 'checkbox', id: 'fwd-reserve', name: 'reserve' }), ' Reserve this address so the forward follows the device'));
    var el = h('div', null, h('label', { 'for': 'fwd-device', text: 'Device' }), sel, note, offer,
      h('span', { 'class': 'err', 'data-for': 'device' }));
    function host() { return el.parentNode && el.parentNode.querySelector('[name=internal_host]'); }
    function update(fill) {
      var d = byMac[sel.value], input = host();
      note.textContent = '';
      offer.hidden = true;
      if (input) input.disabled = false;
      if (!d) return;
      if (d.reserved) {
        note.textContent = 'follows ' + label(d) + ' (' + d.reserved + ')';
        if (input) { input.value = d.reserved; input.disabled = true; }
      } else {
        if (input && fill && d.address) input.value = d.address;
        offer.hidden = !ctx.dhcp;
      }
    }
    sel.addEventListener('change', function () { update(true); });
    if (o.device) {
      if (!byMac[o.device]) sel.appendChild(h('option', { value: o.device, text: o.device }));
      sel.value = o.device;
      note.textContent = 'follows ' + o.device;
    }
    return {
      el: el,
      ready: function () { update(false); },
      finish: function (f, body) {
        var d = byMac[sel.value];
        if (!sel.value) { delete body.device; return Promise.resolve(true); }
        if ((d && d.reserved) || (!d && o.device === sel.value)) {
          body.device = sel.value; delete body.internal_host;
          return Promise.resolve(true);
        }
        delete body.device;
        if (!offer.hidden && f.elements.reserve.checked) {
          var res = { name: hostName(d), mac: d.mac, address: body.internal_host };
          return saveDhcp(ctx.dhcp, ctx.tag, function (n) { n.reservations = (n.reservations || []).concat([res]); }).then(function (r) {
            if (P.conflict(r, 'The DHCP settings')) return false;
            if (!r.ok) { refused(f, r, function (x) { return /reservations/.test(x) ? 'device' : x; }); return false; }
            body.device = d.mac; delete body.internal_host;
            return true;
          });
        }
        return Promise.resolve(true);
      }
    };
  };
  // The name a forward list shows for a forward to `mac`.
  P.deviceName = function (ctx, mac) {
    var d = (ctx.devices || []).filter(function (x) { return x.mac === mac; })[0];
    return d ? label(d) + (d.reserved ? ' (' + d.reserved + ')' : '') : mac;
  };

  P.register('devices', devicesPage);
})();
