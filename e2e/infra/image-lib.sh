# shellcheck shell=bash
# Shell functions shared by the scripts that build cluster parts from the Go module proxy and
# make their container images without a container engine (`cluster-parts.sh`,
# `monitoring-parts.sh`). Sourced, not run. The caller sets ROOT (a directory for temporary work,
# on the same file system as the outputs) and defines `log`.

# Prints the go.mod directives of FILE that a wrapper module must copy, as `go mod edit` flags.
copied_directives() {
  awk '
    function flag(kind, line,   f) {
      sub(/\/\/.*/, "", line)
      n = split(line, f, /[ \t]+/)
      if (kind == "replace") {
        # OLD [VERSION] => NEW [VERSION]
        for (i = 1; i <= n; i++) if (f[i] == "=>") arrow = i
        old = f[1]; if (arrow == 3) old = old "@" f[2]
        new = f[arrow + 1]; if (n > arrow + 1) new = new "@" f[arrow + 2]
        print "-replace=" old "=" new
      } else if (n >= 2) print "-exclude=" f[1] "@" f[2]
    }
    { gsub(/^[ \t]+|[ \t]+$/, "") }
    block != "" && $0 == ")" { block = ""; next }
    block != "" && $0 != "" && $0 !~ /^\/\// { flag(block, $0); next }
    /^(replace|exclude)[ \t]*\($/ { block = $1; next }
    /^(replace|exclude)[ \t]/ { kind = $1; sub(/^(replace|exclude)[ \t]+/, ""); flag(kind, $0) }
  ' "$1"
}

# make_image REF ROOTFS OUT CONFIG: a `docker save`-style archive of one layer (ROOTFS, owned
# by root, timestamps zeroed so the same inputs give the same image ID). CONFIG is the JSON body
# of the image's "config" object (Entrypoint, Cmd, Env, User, ...).
make_image() {
  local ref=$1 rootfs=$2 out=$3 config=$4 work diff_id config_json config_id
  work="$(mktemp -d "$ROOT/image.XXXXXX")"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$work/layer.tar" .
  diff_id="$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
  mkdir "$work/$diff_id"
  mv "$work/layer.tar" "$work/$diff_id/layer.tar"
  config_json="{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":\"1970-01-01T00:00:00Z\",\"config\":{$config},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$diff_id\"]}}"
  config_id="$(printf '%s' "$config_json" | sha256sum | cut -d' ' -f1)"
  printf '%s' "$config_json" >"$work/$config_id.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$config_id" "$ref" "$diff_id" >"$work/manifest.json"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work" -cf "$out.tmp" manifest.json "$config_id.json" "$diff_id"
  rm -rf "$work"
  mv -f "$out.tmp" "$out"
}

# A minimal root filesystem in a new directory: /etc/passwd, /etc/group, /tmp.
base_rootfs() {
  local dir
  dir="$(mktemp -d "$ROOT/rootfs.XXXXXX")"
  chmod 755 "$dir"
  mkdir -p "$dir/etc" "$dir/tmp" "$dir/root"
  chmod 1777 "$dir/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
  echo "$dir"
}

# Runs "$@" as one part and reports the time it took (when it had anything to do).
part() {
  local name=$1 started=${EPOCHREALTIME/[.,]/} took
  shift
  "$@"
  took=$(((${EPOCHREALTIME/[.,]/} - started) / 1000000))
  ((took < 1)) || log "$name took $took s"
}
