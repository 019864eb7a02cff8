'use strict';
'require view';
'require rpc';
'require poll';

// Live status of a Sluice daemon (server `main` or a client interface) from `ubus call sluice status`, with
// connect / disconnect buttons for clients (write ACL).

var callStatus = rpc.declare({ object: 'sluice', method: 'status', params: [ 'name' ], expect: { } });
var callConnect = rpc.declare({ object: 'sluice', method: 'connect', params: [ 'name' ], expect: { } });
var callDisconnect = rpc.declare({ object: 'sluice', method: 'disconnect', params: [ 'name' ], expect: { } });

function fmt(v) {
	return (v === null || v === undefined || v === '') ? '-' : String(v);
}

function renderTable(title, headers, rows) {
	return E('div', { 'class': 'cbi-section' }, [
		E('h3', {}, title),
		E('table', { 'class': 'table' }, [
			E('tr', { 'class': 'tr table-titles' }, headers.map(function(h) { return E('th', { 'class': 'th' }, h); }))
		].concat(rows.length ? rows.map(function(r) {
			return E('tr', { 'class': 'tr' }, r.map(function(c) { return E('td', { 'class': 'td' }, fmt(c)); }));
		}) : [ E('tr', { 'class': 'tr placeholder' }, [ E('td', { 'class': 'td' }, E('em', {}, _('None'))) ]) ]))
	]);
}

function renderStatus(st) {
	if (!st || st.error)
		return E('p', { 'class': 'alert-message warning' }, _('Sluice is not running') + (st && st.error ? ': ' + st.error : ''));

	var sessions = [];
	(st.tunnels || []).forEach(function(t) {
		(t.sessions || []).forEach(function(s) {
			sessions.push([ t.peer, s.username, s.ip, s.state ]);
		});
	});

	var counters = Object.keys(st.counters || {}).sort().map(function(k) { return [ k, st.counters[k] ]; });

	return E('div', {}, [
		E('p', {}, [ E('strong', {}, fmt(st.name)), ' (', fmt(st.role), ')',
			st.last_error ? E('span', { 'class': 'sluice-last-error' }, ' — ' + _('last error') + ': ' + st.last_error) : '' ]),
		renderTable(_('Tunnels'), [ _('Peer'), _('Local ID'), _('Peer ID'), _('State') ],
			(st.tunnels || []).map(function(t) { return [ t.peer, t.local_id, t.peer_id, t.state ]; })),
		renderTable(_('Sessions'), [ _('Peer'), _('User'), _('Address'), _('State') ], sessions),
		renderTable(_('IPsec SAs'), [ _('Peer'), _('SPI in'), _('SPI out'), _('Cipher') ],
			(st.sas || []).map(function(a) { return [ a.peer, a.spi_in, a.spi_out, a.cipher ]; })),
		renderTable(_('Counters'), [ _('Counter'), _('Value') ], counters)
	]);
}

return view.extend({
	handleSaveApply: null,
	handleSave: null,
	handleReset: null,

	load: function() {
		return L.resolveDefault(callStatus(''), null);
	},

	render: function(st) {
		var body = E('div', { 'id': 'sluice-status-body' }, renderStatus(st));
		var name = (st && st.name) || '';

		poll.add(function() {
			return L.resolveDefault(callStatus(''), null).then(function(s) {
				body.innerHTML = '';
				body.appendChild(renderStatus(s));
			});
		}, 5);

		var buttons = (st && st.role === 'client') ? E('div', { 'class': 'cbi-page-actions' }, [
			E('button', { 'class': 'cbi-button cbi-button-apply', 'click': function() { return callConnect(name); } }, _('Connect')),
			' ',
			E('button', { 'class': 'cbi-button cbi-button-reset', 'click': function() { return callDisconnect(name); } }, _('Disconnect'))
		]) : '';

		return E('div', {}, [ E('h2', {}, _('Sluice VPN status')), body, buttons ]);
	}
});
