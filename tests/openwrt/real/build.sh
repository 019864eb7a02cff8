#!/bin/sh
# Builds the real OpenWrt programs the optional contract tests use, from their public sources, into $1
# (default: .openwrt-real in the checkout; nothing is installed system-wide):
#   uci (the CLI), libubox (libubox, libblobmsg_json, jshn + sh/jshn.sh), ubus (ubusd, ubus), rpcd, netifd's scripts.
# Each source is cloned from GitHub unless $OUT/<name> is already there (pre-populate it where there is no
# network). Needs git, cmake, gcc, libjson-c-dev, and busybox to run the tests (OpenWrt's /bin/sh; jshn.sh uses
# export -n).
# Then: eval "$(tests/openwrt/real/build.sh)" and run pytest tests/unit/test_uci_real.py tests/openwrt.
set -e
OUT="$(cd "$(dirname "$0")/../../.." && pwd)/.openwrt-real"
[ -n "$1" ] && OUT="$1"
mkdir -p "$OUT" && cd "$OUT"
for r in uci libubox ubus rpcd netifd; do
	[ -d "$r" ] || git clone -q --depth 1 "https://github.com/openwrt/$r.git" "$r" >&2
done
mkdir -p inc bin rpcroot/libexec/rpcd
ln -sfn "$OUT/libubox" inc/libubox
(cd libubox && cmake -B build -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF -DBUILD_TESTS=OFF . && make -C build ubox blobmsg_json jshn) >&2
cp libubox/build/jshn bin/
(cd uci && cmake -B build -DBUILD_LUA=OFF -DCMAKE_C_FLAGS="-I$OUT/inc" -DCMAKE_LIBRARY_PATH="$OUT/libubox/build" \
	-Dubox_include_dir="$OUT/inc" . && make -C build uci cli) >&2
cp uci/build/uci bin/
(cd ubus && cmake -B build -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF -DCMAKE_C_FLAGS="-I$OUT/inc" \
	-DCMAKE_LIBRARY_PATH="$OUT/libubox/build" -Dubox_include_dir="$OUT/inc" . && make -C build) >&2
(cd rpcd && cmake -B build -DFILE_SUPPORT=OFF -DIWINFO_SUPPORT=OFF -DRPCSYS_SUPPORT=OFF -DUCODE_SUPPORT=OFF \
	-DCMAKE_INSTALL_PREFIX="$OUT/rpcroot" -DCMAKE_C_FLAGS="-I$OUT/inc -I$OUT/uci -I$OUT/ubus -Wno-error" \
	-DCMAKE_LIBRARY_PATH="$OUT/libubox/build;$OUT/ubus/build;$OUT/uci/build" -Dubox_include_dir="$OUT/inc" \
	-Dubus_include_dir="$OUT/ubus" . && make -C build) >&2
cat <<EOT
export LD_LIBRARY_PATH="$OUT/libubox/build:$OUT/ubus/build:$OUT/uci/build\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export PATH="$OUT/bin:\$PATH"
export SLUICE_REAL_UCI="$OUT/bin/uci" SLUICE_JSHN_SH="$OUT/libubox/sh/jshn.sh" SLUICE_NETIFD_SRC="$OUT/netifd"
export SLUICE_RPCD="$OUT/rpcd/build/rpcd" SLUICE_UBUSD="$OUT/ubus/build/ubusd" SLUICE_UBUS="$OUT/ubus/build/ubus"
export SLUICE_RPCD_PLUGIN_DIR="$OUT/rpcroot/libexec/rpcd"
EOT
