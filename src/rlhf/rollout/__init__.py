"""Generation engines, experience batches, advantages, KL control and reward scoring."""
