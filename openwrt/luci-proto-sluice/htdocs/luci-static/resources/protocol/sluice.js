'use strict';
'require form';
'require network';

// Protocol 'sluice' in Network > Interfaces: an L2TP/IPsec client run by netifd through
// /lib/netifd/proto/sluice.sh. The daemon creates the TUN device sluice-<interface> (15 characters at most).

network.registerPatternVirtual(/^sluice-.+$/);

return network.registerProtocol('sluice', {
	getI18n: function() {
		return _('L2TP/IPsec (Sluice)');
	},

	getIfname: function() {
		return this._ubus('l3_device') || ('sluice-' + this.sid).substring(0, 15);
	},

	getOpkgPackage: function() {
		return 'sluice';
	},

	isFloating: function() {
		return true;
	},

	isVirtual: function() {
		return true;
	},

	getDevices: function() {
		return null;
	},

	containsDevice: function(ifname) {
		return (network.getIfnameOf(ifname) == this.getIfname());
	},

	renderFormOptions: function(s) {
		var o;

		o = s.taboption('general', form.Value, 'server', _('VPN server'));
		o.datatype = 'host(0)';
		o.rmempty = false;

		o = s.taboption('general', form.Value, 'username', _('PAP/CHAP username'));
		o = s.taboption('general', form.Value, 'password', _('PAP/CHAP password'));
		o.password = true;

		o = s.taboption('general', form.Flag, 'ipsec', _('Use IPsec'),
			_('Without IPsec, L2TP and the PPP login travel unencrypted.'));
		o.default = '1';

		o = s.taboption('general', form.Value, 'psk', _('IPsec pre-shared key'));
		o.password = true;
		o.depends('ipsec', '1');

		o = s.taboption('advanced', form.Flag, 'legacy', _('Legacy ciphers'),
			_('Allow 3DES, MD5 and MODP1024 for old servers.'));

		o = s.taboption('advanced', form.ListValue, 'datapath', _('Data path'),
			_('Automatic: the kernel when its IPsec, L2TP and PPP modules are installed, else Sluice itself.'));
		o.value('auto', _('Automatic'));
		o.value('kernel', _('Kernel'));
		o.value('user', _('Sluice (user space)'));
		o.default = 'auto';

		o = s.taboption('advanced', form.Value, 'cert', _('Client certificate file'));
		o = s.taboption('advanced', form.Value, 'key', _('Client key file'));
		o = s.taboption('advanced', form.Value, 'ca', _('CA certificate file'));
		o = s.taboption('advanced', form.Value, 'server_name', _('Server identity'));

		o = s.taboption('advanced', form.DynamicList, 'routes', _('Routes through the tunnel'));
		o.datatype = 'cidr4';

		o = s.taboption('advanced', form.Flag, 'defaultroute', _('Use the tunnel as default route'));
		o.default = '0';

		o = s.taboption('advanced', form.Flag, 'peerdns', _('Use DNS servers from the server'));
		o.default = '1';

		o = s.taboption('advanced', form.Flag, 'route_lan', _('Route the LAN through the tunnel'),
			_('Policy routing: traffic from the LAN leaves by the tunnel; the router itself keeps its default route.'));

		o = s.taboption('advanced', form.DynamicList, 'route_src', _('Route these LAN sources through the tunnel'));
		o.datatype = 'or(cidr4,ip4addr)';

		o = s.taboption('advanced', form.Flag, 'killswitch', _('Kill switch'),
			_('Never forward those sources to the WAN when the tunnel is down.'));

		o = s.taboption('advanced', form.Value, 'mtu', _('Override MTU'));
		o.placeholder = '1400';
		o.datatype = 'range(576,1500)';
	}
});
