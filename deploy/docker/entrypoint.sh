#!/bin/sh
# The image's entry point: `facmon ARGS`, after turning each FACMON_<NAME>_FILE (a Docker secret such as
# /run/secrets/mqtt_password) into FACMON_<NAME> holding the file's content, for the settings facmon reads from the
# environment only. FACMON_SECRET_KEY_FILE stays as it is: facmon reads that file itself.
set -eu

for name in $(env | sed -n 's/^\(FACMON_[A-Z0-9_]*\)_FILE=.*/\1/p'); do
    [ "$name" = FACMON_SECRET_KEY ] && continue
    eval "file=\${${name}_FILE}"
    eval "given=\${${name}:-}"
    if [ -n "$given" ]; then
        echo "facmon: both $name and ${name}_FILE are set; keep one" >&2
        exit 2
    fi
    if [ ! -r "$file" ]; then
        echo "facmon: ${name}_FILE: cannot read $file" >&2
        exit 2
    fi
    value=$(cat "$file")
    export "$name=$value"
    unset "${name}_FILE"
done

exec facmon "$@"
