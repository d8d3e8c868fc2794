# contrib/agent/: vmshim-agent, the reference guest agent (filled in by the agent issue).
