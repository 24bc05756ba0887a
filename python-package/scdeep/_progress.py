"""Progress from the core: a tqdm bar over epochs when verbose, messages to `logging`."""
import logging

log = logging.getLogger("scdeep")


class Progress:
    def __init__(self, verbose):
        self.verbose = verbose
        self.bar = None

    def __call__(self, stage, epoch, epochs, step, steps, losses):
        if stage.startswith("message:"):
            log.info(stage[len("message:"):])
            return
        if stage != "train":
            log.info("stage: %s", stage)
            self.close()
            return
        if not self.verbose or losses is None:
            return
        if self.bar is None:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=epochs, desc="training", unit="epoch")
            except ImportError:
                self.bar = False
        text = "  ".join(f"{k} {v:.4f}" for k, v in losses[:3])
        if self.bar:
            self.bar.update(1)
            self.bar.set_postfix_str(text)
        else:
            every = max(1, epochs // 20)
            if epoch == 1 or epoch % every == 0 or epoch == epochs:
                print(f"scdeep: epoch {epoch}/{epochs} | {text}", flush=True)

    def close(self):
        if self.bar:
            self.bar.close()
        self.bar = None
