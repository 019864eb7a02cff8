# Stand-in for /lib/netifd/netifd-proto.sh (tests only): each proto_* call is recorded.
# json_get_vars reads the interface's options from variables OPT_<name> that the test sets, which is what
# netifd's real json_get_vars yields from the config JSON it passes to the handler.
. "$STUBS/record.sh"

json_get_vars() {
	local __v
	for __v in "$@"; do
		eval "$__v=\"\${OPT_$__v}\""
	done
}

init_proto() { record init_proto "$@"; }
add_protocol() { record add_protocol "$@"; }
proto_config_add_string() { record proto_config_add_string "$@"; }
proto_config_add_boolean() { record proto_config_add_boolean "$@"; }
proto_config_add_int() { record proto_config_add_int "$@"; }
proto_config_add_array() { record proto_config_add_array "$@"; }
proto_notify_error() { record proto_notify_error "$@"; }
proto_block_restart() { record proto_block_restart "$@"; }
proto_setup_failed() { record proto_setup_failed "$@"; }
proto_add_host_dependency() { record proto_add_host_dependency "$@"; }
proto_export() { record proto_export "$@"; }
proto_run_command() { record proto_run_command "$@"; }
proto_kill_command() { record proto_kill_command "$@"; }
proto_init_update() { record proto_init_update "$@"; }
proto_add_ipv4_address() { record proto_add_ipv4_address "$@"; }
proto_add_ipv4_route() { record proto_add_ipv4_route "$@"; }
proto_add_ipv6_address() { record proto_add_ipv6_address "$@"; }
proto_add_ipv6_route() { record proto_add_ipv6_route "$@"; }
proto_add_dns_server() { record proto_add_dns_server "$@"; }
proto_send_update() { record proto_send_update "$@"; }
json_add_int() { record json_add_int "$@"; }
