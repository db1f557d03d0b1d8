"""Inside an environment build's sandbox, which has no network: the installer's way to the
package index. It listens on the sandbox's own 127.0.0.1, starts the installer with
HTTP_PROXY and HTTPS_PROXY pointing at itself, and carries each connection to the worker's
index proxy (environments/index_proxy.py) over the unix socket bind-mounted in; it exits with the
installer's exit status.

    python -I -S index_relay.py SOCKET -- INSTALLER ARGUMENTS...

Standard library only, run isolated (-I -S): no package's code is on its path.
"""

import os
import socket
import subprocess
import sys
import threading

CHUNK = 256 * 1024


def pump(source, target):
    try:
        while data := source.recv(CHUNK):
            target.sendall(data)
    except OSError:
        pass
    finally:
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def carry(client, path):
    with client, socket.socket(socket.AF_UNIX) as upstream:
        try:
            upstream.connect(path)
        except OSError:
            return
        back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        back.start()
        pump(client, upstream)
        back.join()


def serve(listener, path):
    while True:
        client, _ = listener.accept()
        threading.Thread(target=carry, args=(client, path), daemon=True).start()


def main():
    path, separator, *command = sys.argv[1:]
    if separator != "--" or not command:
        sys.exit("usage: index_relay.py SOCKET -- COMMAND...")
    listener = socket.create_server(("127.0.0.1", 0))
    proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"
    environment = {
        name: value
        for name, value in os.environ.items()
        if name.lower() not in ("no_proxy", "all_proxy")
    }
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        environment[name] = proxy
    installer = subprocess.Popen(command, env=environment)
    threading.Thread(target=serve, args=(listener, path), daemon=True).start()
    code = installer.wait()
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
