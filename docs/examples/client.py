#!/usr/bin/python3
"""Send one score request to riskd and print the reply as JSON.

usage: client.py [ENDPOINT]        (default tcp://127.0.0.1:7700)

Uses a REQ socket, the simplest way to talk to riskd: one request, then its
reply. Waits at most 2 seconds for the reply. Exit status: 0 when riskd
answered with a decision, 1 when it answered with an error or did not answer
in time, 2 on a usage error.

Needs Debian's python3-zmq and python3-msgpack (apt-get install python3-zmq
python3-msgpack). See docs/protocol.md for every key of the request and reply.
"""
import json
import os
import sys
import time

import msgpack
import zmq

DEFAULT_ENDPOINT = "tcp://127.0.0.1:7700"
TIMEOUT_MS = 2000


def main(argv):
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if len(argv) > 2 or (len(argv) == 2 and argv[1].startswith("-")):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    endpoint = argv[1] if len(argv) == 2 else DEFAULT_ENDPOINT

    now_ms = int(time.time() * 1000)
    request = {
        "id": "example-%d-%d" % (os.getpid(), now_ms),  # unique: a repeated id is a retry
        "account": "acct-1042",
        "amount": 1999,            # minor units: 19.99
        "currency": "EUR",
        "ts": now_ms,              # event time, ms since the Unix epoch
        "type": "purchase",
        "channel": "web",
        "card": "tok_4f9a1c",      # a token or fingerprint, never a card number
        "device": "dev-7c2e",
        "ip": "203.0.113.7",
        "ip_country": "NL",
        "card_country": "DE",
        "merchant": "m-31337",
        "mcc": 5411,
    }

    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)          # do not hang at exit if riskd is away
    sock.setsockopt(zmq.SNDTIMEO, TIMEOUT_MS)
    sock.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    try:
        sock.connect(endpoint)
        sock.send(msgpack.packb(request, use_bin_type=True))
        body = sock.recv()
    except zmq.Again:
        print("client.py: no reply from %s within %d ms" % (endpoint, TIMEOUT_MS),
              file=sys.stderr)
        return 1
    except zmq.ZMQError as e:
        print("client.py: %s: %s" % (endpoint, e), file=sys.stderr)
        return 1
    finally:
        sock.close()
        ctx.term()

    reply = msgpack.unpackb(body, raw=False)
    print(json.dumps(reply, indent=2, ensure_ascii=False))
    return 1 if "error" in reply else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
