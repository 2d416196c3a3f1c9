"""The localnet goes by devnet's x402 ids with its own RPC; the ids are the official package's."""

import doctest

import pytest
from x402.mechanisms.svm import constants as official

from ghostpay.exceptions import InvalidArgument
from ghostpay.x402 import networks
from ghostpay.x402.networks import DEVNET, MAINNET, network_by_id, network_for_cluster, same_network


def test_ids_are_the_official_packages():
    assert DEVNET.caip2 == official.SOLANA_DEVNET_CAIP2
    assert MAINNET.caip2 == official.SOLANA_MAINNET_CAIP2
    assert official.V1_TO_V2_NETWORK_MAP[DEVNET.v1_name] == DEVNET.caip2
    assert official.V1_TO_V2_NETWORK_MAP[MAINNET.v1_name] == MAINNET.caip2


@pytest.mark.parametrize("cluster", ["l", "localnet", "http://127.0.0.1:18899", "http://10.0.0.5:8899"])
def test_a_localnet_goes_by_devnet_ids_with_its_own_rpc(cluster):
    net = network_for_cluster(cluster)
    assert (net.caip2, net.v1_name) == (DEVNET.caip2, DEVNET.v1_name)
    assert net.rpc_url.startswith("http://") and net.rpc_url != DEVNET.rpc_url
    assert net.ws_url.startswith("ws://")


def test_public_clusters():
    assert network_for_cluster("devnet") == DEVNET
    assert network_for_cluster("m") == MAINNET


def test_lookup_by_either_spelling_and_unknown_ids():
    assert network_by_id("solana-devnet") is DEVNET
    assert network_by_id(MAINNET.caip2) is MAINNET
    assert same_network("solana", MAINNET.caip2)
    assert not same_network("solana", DEVNET.caip2)
    with pytest.raises(InvalidArgument, match="unknown x402 network 'solana:localnet'"):
        network_by_id("solana:localnet")


def test_doctests():
    assert doctest.testmod(networks).failed == 0
