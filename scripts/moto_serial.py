"""`moto_server` with its DynamoDB requests answered one at a time.

moto runs each request on a thread of its own, and answers a TransactWriteItems whose condition
fails by restoring a copy of the whole table taken when that transaction began: a transaction
another thread committed meanwhile is undone, and an item it was writing can be left half
written (a head item without its `rev`). DynamoDB's transactions are atomic and isolated, and
the conformance suites assert exactly that (concurrent commits and staging finishes answer one
revision), so the test double must be too. One lock around moto's DynamoDB handler gives that
isolation; moto's work is Python under one interpreter lock anyway, so little is lost. S3 and
SQS requests are untouched.

Usage: the arguments of `moto_server` (`python scripts/moto_serial.py -H 127.0.0.1 -p PORT`).
"""

import sys
import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_LOCK = threading.Lock()
_call_action = DynamoHandler.call_action


def _serialised_call_action(self):
    with _LOCK:
        return _call_action(self)


DynamoHandler.call_action = _serialised_call_action

if __name__ == "__main__":
    sys.argv[0] = "moto_server"
    sys.exit(main())
