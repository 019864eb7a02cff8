# Stand-in for /lib/functions/procd.sh and /etc/rc.common's procd glue (tests only): procd_* calls recorded.
. "$STUBS/record.sh"
procd_open_instance() { record procd_open_instance "$@"; }
procd_set_param() { record procd_set_param "$@"; }
procd_close_instance() { record procd_close_instance "$@"; }
procd_add_reload_trigger() { record procd_add_reload_trigger "$@"; }
