# Copyright: istio_ops.gateways contributors
# Apache License 2.0 (see LICENSE)
"""The base of every error a module turns into fail_json."""


class GatewayError(Exception):
    """An error with a message for the user and optional extra result keys."""

    def __init__(self, message, **details):
        super(GatewayError, self).__init__(message)
        self.message = message
        self.details = details


class InputError(GatewayError):
    """Invalid parameters, found before anything is written."""
