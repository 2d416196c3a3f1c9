// Drives a GhostPay localnet through @solana/web3.js 1.x and prints a JSON summary.
// Usage: node localnet.mjs <http-url> <ws-url> <program-id> <agent-owner> <agent-account-size>
import {
  Connection, Keypair, LAMPORTS_PER_SOL, PublicKey, SystemProgram, Transaction, TransactionInstruction,
  sendAndConfirmTransaction,
} from "@solana/web3.js";

const [httpUrl, wsUrl, programIdText, agentOwnerText, agentSpaceText] = process.argv.slice(2);
const programId = new PublicKey(programIdText);
const connection = new Connection(httpUrl, { commitment: "confirmed", wsEndpoint: wsUrl });
const summary = {};

function withTimeout(promise, ms, what) {
  return Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), ms))]);
}

summary.version = (await connection.getVersion())["solana-core"];
const payer = Keypair.generate();
const airdrop = await connection.requestAirdrop(payer.publicKey, 2 * LAMPORTS_PER_SOL);
const latest = await connection.getLatestBlockhash();
await connection.confirmTransaction({ signature: airdrop, ...latest }, "confirmed");
summary.balance = await connection.getBalance(payer.publicKey);

// logsSubscribe on the program, then a GhostPay call with an unknown instruction (lands with skipPreflight)
const programLogs = new Promise((resolve) => {
  const id = connection.onLogs(programId, (logs) => { connection.removeOnLogsListener(id); resolve(logs); }, "confirmed");
});
const receiver = Keypair.generate().publicKey;
const transfer = new Transaction().add(
  SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: receiver, lamports: 1_000_000 }));
const transferSig = await sendAndConfirmTransaction(connection, transfer, [payer], { commitment: "confirmed" });
summary.receiverBalance = await connection.getBalance(receiver);

// signatureSubscribe fires for the GhostPay call
const bad = new Transaction().add(new TransactionInstruction({ programId, keys: [], data: Buffer.alloc(8) }));
bad.recentBlockhash = (await connection.getLatestBlockhash()).blockhash;
bad.feePayer = payer.publicKey;
bad.sign(payer);
try {
  await connection.sendRawTransaction(bad.serialize());
  summary.preflight = "accepted";
} catch (error) {
  summary.preflight = error.message;
  summary.preflightLogs = (error.logs ?? []).length;
}
const badSig = await connection.sendRawTransaction(bad.serialize(), { skipPreflight: true });
const signatureResult = new Promise((resolve) => connection.onSignature(badSig, (result) => resolve(result), "confirmed"));
summary.signatureErr = (await withTimeout(signatureResult, 5000, "onSignature")).err;
const logs = await withTimeout(programLogs, 5000, "onLogs");
summary.logsSignature = logs.signature === badSig;
summary.logsErr = logs.err;

const tx = await connection.getTransaction(transferSig, { maxSupportedTransactionVersion: 0, commitment: "confirmed" });
summary.transferLogs = tx.meta.logMessages;
summary.transferFee = tx.meta.fee;
const info = await connection.getAccountInfo(programId);
summary.programExecutable = info.executable;

const agents = await connection.getProgramAccounts(programId, {
  filters: [{ dataSize: Number(agentSpaceText) }, { memcmp: { offset: 8, bytes: agentOwnerText } }],
});
summary.agents = agents.map((a) => a.pubkey.toBase58());
summary.signatures = (await connection.getSignaturesForAddress(receiver)).map((s) => s.signature);
summary.transferSig = transferSig;
summary.epoch = (await connection.getEpochInfo()).epoch;
console.log(JSON.stringify(summary));
process.exit(0);
