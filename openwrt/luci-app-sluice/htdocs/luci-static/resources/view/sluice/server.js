'use strict';
'require view';
'require form';
'require rpc';
'require poll';
'require uci';

// Sluice VPN server: settings of the `config server` sections of /etc/config/sluice, the users table
// (`config user`) and the live status of the daemon from the rpcd plugin (ubus object `sluice`).

var callStatus = rpc.declare({
	object: 'sluice',
	method: 'status',
	params: [ 'name' ],
	expect: { }
});

function statusText(st) {
	if (!st || st.error)
		return _('Not running') + (st && st.error ? ' (' + st.error + ')' : '');
	var sessions = 0;
	(st.tunnels || []).forEach(function(t) { sessions += (t.sessions || []).length; });
	return _('Running') + ': ' + (st.tunnels || []).length + ' ' + _('tunnels') + ', ' + sessions + ' ' +
		_('sessions') + ', ' + (st.sas || []).length + ' ' + _('IPsec SAs') +
		(st.last_error ? ' — ' + _('last error') + ': ' + st.last_error : '');
}

return view.extend({
	load: function() {
		return Promise.all([
			uci.load('sluice'),
			L.resolveDefault(callStatus('main'), null)
		]);
	},

	render: function(data) {
		var m, s, o;
		var statusNode = E('div', { 'class': 'cbi-section', 'id': 'sluice-server-status' }, [
			E('h3', {}, _('Status')),
			E('p', { 'class': 'sluice-status-text' }, statusText(data[1]))
		]);

		poll.add(function() {
			return L.resolveDefault(callStatus('main'), null).then(function(st) {
				var p = statusNode.querySelector('.sluice-status-text');
				p.textContent = statusText(st);
			});
		}, 5);

		m = new form.Map('sluice', _('L2TP/IPsec VPN server'),
			_('Accepts the built-in L2TP/IPsec clients of Windows, macOS, iOS, Android and Linux. UDP 500 and 4500 are opened on the WAN; L2TP (UDP 1701) is only accepted inside IPsec.'));

		s = m.section(form.TypedSection, 'server', _('Server'));
		s.anonymous = false;
		s.addremove = false;

		o = s.option(form.Flag, 'enabled', _('Enable'));
		o.default = '0';
		o.rmempty = false;

		o = s.option(form.Flag, 'ipsec', _('Require IPsec'),
			_('Turning this off accepts plain, unencrypted L2TP.'));
		o.default = '1';

		o = s.option(form.Value, 'psk', _('Pre-shared key'),
			_('Generate a strong key with <code>sluice genpsk</code>.'));
		o.password = true;
		o.depends('ipsec', '1');

		o = s.option(form.Flag, 'legacy', _('Legacy ciphers'),
			_('Adds 3DES, MD5 and MODP1024 for Android up to 11 and older clients.'));

		o = s.option(form.Value, 'local_ip', _('Server address in the tunnel'));
		o.datatype = 'ip4addr';
		o.placeholder = '10.77.0.1';

		o = s.option(form.Value, 'pool_start', _('First client address'));
		o.datatype = 'ip4addr';
		o.placeholder = '10.77.0.10';

		o = s.option(form.Value, 'pool_end', _('Last client address'));
		o.datatype = 'ip4addr';
		o.placeholder = '10.77.0.250';

		o = s.option(form.DynamicList, 'dns', _('DNS servers for clients'));
		o.datatype = 'ip4addr';

		s = m.section(form.TableSection, 'user', _('Users'));
		s.anonymous = true;
		s.addremove = true;

		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';

		o = s.option(form.Value, 'username', _('Username'));
		o.rmempty = false;

		o = s.option(form.Value, 'password', _('Password'));
		o.password = true;
		o.rmempty = false;

		o = s.option(form.Value, 'ip', _('Fixed address'));
		o.datatype = 'ip4addr';
		o.optional = true;

		return m.render().then(function(mapNode) {
			return E('div', {}, [ statusNode, mapNode ]);
		});
	}
});
