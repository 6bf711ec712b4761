#!/usr/bin/env bash
# Lays out the root filesystem of a minimal container image for one dynamically linked program:
#
#   <dest>/usr/local/bin/<name>            the program
#   <dest>/<path ldd prints>               every shared library it loads, the dynamic loader too
#   <dest>/etc/ssl/certs/ca-certificates.crt
#   <dest>/etc/passwd, /etc/group          root and nonroot (65532), as distroless images have
#   <dest>/etc/nsswitch.conf               hosts: files dns (/etc/hosts first, as glibc expects)
#   <dest>/home/nonroot                    (owned by 65532 when run as root)
#   <dest>/tmp                             empty, mode 1777
#
#   deploy/image/rootfs.sh PROGRAM DEST [NAME]
#
# Used by deploy/image/build.sh on this machine and by the build stage of deploy/image/Dockerfile,
# so both images have the same layout. Nothing here needs a shell at run time.
set -euo pipefail

program="${1:?usage: rootfs.sh PROGRAM DEST [NAME]}"
dest="${2:?usage: rootfs.sh PROGRAM DEST [NAME]}"
name="${3:-$(basename "$program")}"
certs="${CA_CERTIFICATES:-/etc/ssl/certs/ca-certificates.crt}"

[ -x "$program" ] || { echo "rootfs.sh: $program is not an executable file" >&2; exit 1; }
[ -f "$certs" ] || { echo "rootfs.sh: no CA certificates at $certs (Debian: apt-get install ca-certificates)" >&2; exit 1; }
command -v ldd >/dev/null 2>&1 || { echo "rootfs.sh: ldd not found (Debian: libc-bin)" >&2; exit 1; }

mkdir -p "$dest/usr/local/bin" "$dest/etc/ssl/certs" "$dest/home/nonroot" "$dest/tmp"
install -m 0755 "$program" "$dest/usr/local/bin/$name"

# Shared libraries, each at the path the loader looks for it, symlinks resolved. ldd prints
# "libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x…)" and "/lib64/ld-linux-x86-64.so.2 (0x…)";
# linux-vdso has no file. A static binary ("not a dynamic executable") needs none.
libs="$(ldd "$program" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)" || true
if ldd "$program" 2>&1 | grep -q "not found"; then
  echo "rootfs.sh: $program needs libraries this machine lacks:" >&2
  ldd "$program" | grep "not found" >&2
  exit 1
fi
for lib in $libs; do
  mkdir -p "$dest$(dirname "$lib")"
  cp -L "$lib" "$dest$lib"
done

cp -L "$certs" "$dest/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$dest/etc/ssl/certs/ca-certificates.crt"

cat >"$dest/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
cat >"$dest/etc/group" <<'GROUP'
root:x:0:
nonroot:x:65532:
GROUP
echo "hosts: files dns" >"$dest/etc/nsswitch.conf"
chmod 0644 "$dest/etc/passwd" "$dest/etc/group" "$dest/etc/nsswitch.conf"

chmod 1777 "$dest/tmp"
chmod 0755 "$dest/home/nonroot"
if [ "$(id -u)" = 0 ]; then chown 65532:65532 "$dest/home/nonroot"; fi

echo "rootfs.sh: $name with $(echo "$libs" | grep -c . || true) shared libraries → $dest" >&2
