#!/bin/sh
# Browser tests need Debian's Chromium (never a browser download). Install it when we may; otherwise the
# browser tests skip themselves with a message saying so.
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium and chromium-driver for the browser tests..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "Could not install chromium: the browser tests will be skipped."
else
  echo "No /usr/bin/chromium and no root to install it: the browser tests will be skipped."
fi
