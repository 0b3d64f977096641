"""ConvNet landmarks (Chen et al., IROS 2017): region mining, vocabulary, mutual matching.

See docs/landmarks.md and docs/method-reference.md (L1-L7).
"""
from maqbool_ros.core.rerank.landmarks.matching import MatchScores, match_batch
from maqbool_ros.core.rerank.landmarks.mining import (
           Regions,
           landmark_boxes,
           mine_regions,
           pool_regions,
           pooling_weights,
)
from maqbool_ros.core.rerank.landmarks.reranker import LandmarkReranker
from maqbool_ros.core.rerank.landmarks.vocab import Vocabulary, idf_weights

__all__ = ["LandmarkReranker", "MatchScores", "Regions", "Vocabulary", "idf_weights", "landmark_boxes",
           "match_batch", "mine_regions", "pool_regions", "pooling_weights"]
