"""Building GhostPay and system transactions for the localnet tests."""

from __future__ import annotations

from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction

from ghostpay.agent_instructions import AgentProfile, build_register_agent
from ghostpay.pda import agent_address


def signed(instructions: list[Instruction], signers: list[Keypair], blockhash: Hash) -> Transaction:
    message = Message.new_with_blockhash(instructions, signers[0].pubkey(), blockhash)
    return Transaction(signers, message, blockhash)


def transfer_tx(sender: Keypair, to: Pubkey, lamports: int, blockhash: Hash) -> Transaction:
    return signed(
        [transfer(TransferParams(from_pubkey=sender.pubkey(), to_pubkey=to, lamports=lamports))], [sender], blockhash
    )


def register_tx(owner: Keypair, agent_id: str, blockhash: Hash) -> tuple[Transaction, Pubkey]:
    """register_agent for `owner` (no x402); returns the transaction and the agent's address."""
    ix = build_register_agent(
        owner.pubkey(), AgentProfile(agent_id, f"Agent {agent_id}", agent_type=1, capabilities=["translate"])
    )
    return signed([ix], [owner], blockhash), agent_address(owner.pubkey(), agent_id)[0]
