#!/bin/sh
# An example build: compiles nothing, but behaves like one. It prints progress, writes its
# artifacts into the job directory (everything left there is collected) and exits 0.
set -e
echo "building on $(uname -sm) as $(id -un 2>/dev/null || id -u)"
mkdir -p bin BUILD_INFO
printf '#!/bin/sh\necho "hello from a reproducible build"\n' > bin/hello
chmod 755 bin/hello
echo "SOURCE_DATE_EPOCH=0" > BUILD_INFO/environment
sha256sum bin/hello | tee BUILD_INFO/sha256sums
echo "done"
