//! The AnalyticsPipeline operator (see issue: operator).
