# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection and auth options of every module that talks to RabbitMQ (AMQP 0-9-1).

Internal to sharedsw.cvmfs; may change in any release. Matches ARGSPEC in module_utils/_amqp.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  amqp_auth_method:
    description:
      - How to log in to the broker.
      - V(plain) uses O(amqp_username) and O(amqp_password) (use O(amqp_tls) unless the broker is on
        loopback; without TLS to any other host the module warns that the password is sent in clear,
        and only V(localhost) and loopback addresses count as loopback, names are not resolved).
        V(external) uses the TLS client certificate O(amqp_client_cert) (the broker needs
        the C(rabbitmq_auth_mechanism_ssl) plugin); O(amqp_username) and O(amqp_password) are then
        refused.
      - Nothing is read from the environment.
    type: str
    choices: [external, plain]
    default: plain
  amqp_ca_cert:
    description: PEM bundle of the CA that signed the broker's certificate (with O(amqp_tls)); default the system store.
    type: path
  amqp_client_cert:
    description: PEM client certificate (with O(amqp_tls)); required for O(amqp_auth_method=external).
    type: path
  amqp_client_key:
    description: Private key of O(amqp_client_cert) when it is not in the same file.
    type: path
  amqp_host:
    description: Host name of the RabbitMQ broker the module declares exchanges and queues on.
    type: str
    default: localhost
  amqp_password:
    description: Password for O(amqp_auth_method=plain). Never logged or returned.
    type: str
  amqp_port:
    description: AMQP port; default V(5671) with O(amqp_tls), else V(5672).
    type: int
  amqp_retries:
    description:
      - How many times to retry connecting when the broker refused the connection, dropped it or
        was shutting down, with jittered exponential backoff. Wrong credentials are not retried.
    type: int
    default: 3
  amqp_timeout:
    description: Seconds to wait for the connection and each answer of the broker.
    type: int
    default: 30
  amqp_tls:
    description: Talk AMQP over TLS (AMQPS).
    type: bool
    default: false
  amqp_username:
    description: User name for O(amqp_auth_method=plain).
    type: str
  amqp_validate_certs:
    description: Verify the broker's certificate and host name (with O(amqp_tls)).
    type: bool
    default: true
  amqp_vhost:
    description: Virtual host.
    type: str
    default: /
"""
