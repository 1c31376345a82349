"""drivers/dma-buf: dma_fence, dma_fence_chain, dma_resv."""
