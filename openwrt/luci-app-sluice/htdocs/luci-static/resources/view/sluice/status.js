'use strict';
'require view';
'require rpc';
'require poll';

// Live status of every running Sluice daemon (the server's sessions per user, client interfaces), from
// `ubus call sluice status` (rpcd plugin /usr/libexec/rpcd/sluice, which answers {"daemons": [...]}).
// The fields read here are the ones firmware/status_schema.py promises. Everything a peer can influence
// (user names, host names, addresses, error text) goes into the page as text nodes through E(), never as HTML.

// rpc.js resolves a failed ubus call with its numeric status code (no `reject: true`): turn that into words.
function asObject(reply) {
	if (reply !== null && typeof(reply) == 'object' && !Array.isArray(reply))
		return reply;
	return { error: (typeof(reply) == 'number') ? _('the router answered: %s').replace('%s', rpc.getStatusText(reply))
		: _('no answer from the router') };
}

var callStatus = rpc.declare({ object: 'sluice', method: 'status', params: [ 'name' ], filter: asObject });
var callConnect = rpc.declare({ object: 'sluice', method: 'connect', params: [ 'name' ], filter: asObject });
var callDisconnect = rpc.declare({ object: 'sluice', method: 'disconnect', params: [ 'name' ], filter: asObject });
var callDisconnectUser = rpc.declare({ object: 'sluice', method: 'disconnect', params: [ 'name', 'user' ],
	filter: asObject });

function fmt(v) {
	return (v === null || v === undefined || v === '') ? '-' : String(v);
}

function fmtBytes(n) {
	n = +n || 0;
	var units = [ 'B', 'KiB', 'MiB', 'GiB', 'TiB' ], i = 0;
	while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
	return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
}

function pad(n) { return (n < 10 ? '0' : '') + n; }

// "since": the router's clock when the status was taken minus the session's uptime, shown in local time.
function fmtSince(now, uptime) {
	if (!now || uptime === undefined || uptime === null)
		return '-';
	var d = new Date((now - uptime) * 1000);
	return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
		pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
}

// The daemon's last_error, with what to do about it in plain words.
var HINTS = [
	[ /pre-shared key|psk/i, _('The pre-shared key on the client does not match the router\'s. Copy it again from the Clients page.') ],
	[ /authenticat|password|MS-CHAP|CHAP|PAP/i, _('A user name or password was refused. Check the user in the Users table (and that it is enabled), or the password typed on the client.') ],
	[ /no proposal|NO_PROPOSAL|proposal/i, _('The client offered only ciphers Sluice does not accept by default. Turn on "Legacy ciphers" for Android up to 11 and older devices, or update the client.') ],
	[ /pool|no address/i, _('The address pool is full. Make the range of client addresses larger on the Server page.') ],
	[ /no answer|timed out|unreachable|resolve/i, _('The other side did not answer. Check its address and that UDP ports 500 and 4500 reach it.') ],
	[ /max_sessions|server is full/i, _('The server has as many sessions as it allows (max_sessions).') ]
];

function plainError(msg) {
	if (!msg)
		return null;
	for (var i = 0; i < HINTS.length; i++)
		if (HINTS[i][0].test(msg))
			return HINTS[i][1];
	return null;
}

function lastError(st) {
	if (!st.last_error)
		return E('p', { 'class': 'sluice-last-error-none' }, _('No errors.'));
	var hint = plainError(st.last_error);
	return E('div', { 'class': 'alert-message warning sluice-last-error' }, [
		E('strong', {}, _('Last error') + ': '), E('span', { 'class': 'sluice-error-text' }, st.last_error),
		hint ? E('p', { 'class': 'sluice-error-hint' }, hint) : ''
	]);
}

function table(cls, headers, rows, empty) {
	return E('table', { 'class': 'table ' + cls }, [
		E('tr', { 'class': 'tr table-titles' }, headers.map(function(h) { return E('th', { 'class': 'th' }, h); }))
	].concat(rows.length ? rows.map(function(r) {
		return E('tr', { 'class': 'tr' }, r.map(function(c) {
			return E('td', { 'class': 'td' }, (c instanceof Node) ? c : fmt(c));
		}));
	}) : [ E('tr', { 'class': 'tr placeholder' }, [ E('td', { 'class': 'td' }, E('em', {}, empty)) ]) ]));
}

// Who carries the packets (status "datapath"): the kernel (XFRM, l2tp_ppp, a ppp unit) or Sluice itself.
function fmtPath(p) {
	return p == 'kernel' ? _('kernel') : (p == 'user' ? _('Sluice') : fmt(p));
}

function renderServer(st, refresh) {
	var users = [];
	(st.tunnels || []).forEach(function(t) {
		(t.sessions || []).forEach(function(s) {
			var btn = s.user ? E('button', {
				'class': 'cbi-button cbi-button-remove sluice-disconnect-user', 'data-user': s.user,
				'click': function(ev) {
					ev.target.disabled = true;
					return callDisconnectUser(st.name, s.user).then(refresh);
				}
			}, _('Disconnect')) : '';
			users.push([ s.user || _('(logging in)'), t.peer, s.ip, s.state == 'up' ? fmtSince(st.time, s.uptime) : _('connecting'),
				fmtBytes(s.rx_bytes), fmtBytes(s.tx_bytes), fmtPath(s.datapath), btn ]);
		});
	});
	var tr = st.transport || {};
	var sas = (tr.sas || []).map(function(a) {
		return [ a.peer, a.transform, a.encap ? _('yes') : _('no'), a.spi_in, a.spi_out, a.packets_in, a.packets_out ];
	});
	var pool = st.pool || {};
	return E('div', { 'class': 'cbi-section sluice-daemon', 'data-name': st.name, 'data-role': 'server' }, [
		E('h3', {}, _('Server') + ' ' + st.name),
		E('p', { 'class': 'sluice-summary' }, _('Listening on') + ' ' + fmt(st.listen) + ', ' + users.length + ' ' +
			_('connected') + ', ' + _('addresses') + ' ' + fmt(pool.start) + '–' + fmt(pool.end) + ' (' +
			fmt(pool.used) + ' ' + _('in use') + ')'),
		lastError(st),
		E('h4', {}, _('Who is connected')),
		table('sluice-users', [ _('User'), _('From'), _('Address'), _('Since'), _('Received'), _('Sent'), _('Data path'), '' ],
			users, _('Nobody is connected.')),
		tr.ipsec ? E('h4', {}, _('IPsec SAs')) : '',
		tr.ipsec ? table('sluice-sas', [ _('Peer'), _('Cipher'), _('NAT-T'), _('SPI in'), _('SPI out'),
			_('Packets in'), _('Packets out') ], sas, _('None')) : ''
	]);
}

function renderClient(st, refresh) {
	var sess = null;
	(st.tunnels || []).forEach(function(t) { (t.sessions || []).forEach(function(s) { sess = s; }); });
	var c = st.counters || {};
	var btns = E('div', { 'class': 'cbi-page-actions' }, [
		E('button', { 'class': 'cbi-button cbi-button-apply', 'click': function() { return callConnect(st.name).then(refresh); } },
			_('Connect')),
		' ',
		E('button', { 'class': 'cbi-button cbi-button-reset', 'click': function() { return callDisconnect(st.name).then(refresh); } },
			_('Disconnect'))
	]);
	return E('div', { 'class': 'cbi-section sluice-daemon', 'data-name': st.name, 'data-role': 'client' }, [
		E('h3', {}, _('Client') + ' ' + st.name),
		table('sluice-client', [ _('Server'), _('State'), _('Address'), _('DNS'), _('Since'), _('Received'), _('Sent'), _('Data path') ], [[
			st.server, st.state + (st.wanted === false ? ' (' + _('disconnected by request') + ')' : ''),
			sess ? sess.ip : null, sess ? (sess.dns || []).join(' ') : null,
			sess && sess.state == 'up' ? fmtSince(st.time, sess.uptime) : null, fmtBytes(c.rx_bytes), fmtBytes(c.tx_bytes),
			fmtPath(st.datapath)
		]], ''),
		lastError(st),
		btns
	]);
}

function renderAll(reply, refresh) {
	if (reply.error)
		return E('p', { 'class': 'alert-message warning sluice-not-running' }, _('Sluice status unavailable') + ': ' + reply.error);
	var daemons = Array.isArray(reply.daemons) ? reply.daemons : [];
	if (!daemons.length)
		return E('p', { 'class': 'alert-message sluice-not-running' },
			_('Sluice is not running. Enable the server on the Server page, or add an interface with protocol "L2TP/IPsec (Sluice)".'));
	return E('div', {}, daemons.map(function(st) {
		if (st.error)
			return E('div', { 'class': 'cbi-section sluice-daemon', 'data-name': st.name },
				[ E('h3', {}, fmt(st.name)), E('p', { 'class': 'alert-message warning' }, st.error) ]);
		return st.role == 'server' ? renderServer(st, refresh) : renderClient(st, refresh);
	}));
}

return view.extend({
	handleSaveApply: null,
	handleSave: null,
	handleReset: null,

	load: function() {
		return callStatus();
	},

	render: function(reply) {
		var body = E('div', { 'id': 'sluice-status-body' });
		var refresh = function() {
			return callStatus().then(function(r) {
				while (body.firstChild)
					body.removeChild(body.firstChild);
				body.appendChild(renderAll(r, refresh));
			});
		};
		body.appendChild(renderAll(reply, refresh));
		poll.add(refresh, 5);
		return E('div', {}, [ E('h2', {}, _('L2TP/IPsec VPN status')), body ]);
	}
});
