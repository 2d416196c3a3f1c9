"""The built on-chain program (ghostpay.so), shipped as package data."""
