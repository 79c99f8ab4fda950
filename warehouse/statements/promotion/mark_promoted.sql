UPDATE checkpoints SET promoted = true WHERE checkpoint_id = $checkpoint_id
