# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of every error a module turns into fail_json."""


class GatewayError(Exception):
    """An error with a message for the user and optional extra result keys."""

    def __init__(self, message, **details):
        super(GatewayError, self).__init__(message)
        self.message = message
        self.details = details


class InputError(GatewayError):
    """Invalid parameters, found before anything is written."""
