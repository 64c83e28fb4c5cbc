"""news: sources, articles, per-poll counts, item memory, rejects and dedup stats

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import coinpilot_pipelines.storage.types as cp_types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("news_sources",
    sa.Column("source", sa.String(length=64), nullable=False),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("etag", sa.Text(), nullable=True),
    sa.Column("last_modified", sa.Text(), nullable=True),
    sa.Column("consecutive_errors", sa.Integer(), server_default=sa.text("0"), nullable=False),
    sa.Column("backoff_until", cp_types.UtcTimestamp(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("first_polled_at", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("last_polled_at", cp_types.UtcTimestamp(), nullable=True),
    sa.Column("last_success_at", cp_types.UtcTimestamp(), nullable=True),
    sa.Column("last_new_article_at", cp_types.UtcTimestamp(), nullable=True),
    sa.PrimaryKeyConstraint("source", name=op.f("pk_news_sources"))
    )
    op.create_table("news_articles",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("identity_key", sa.String(length=64), nullable=False),
    sa.Column("guid_key", sa.String(length=64), nullable=True),
    sa.Column("title_hash", sa.String(length=64), nullable=True),
    sa.Column("source", sa.String(length=64), nullable=False),
    sa.Column("guid", sa.Text(), nullable=True),
    sa.Column("canonical_url", sa.Text(), nullable=True),
    sa.Column("title", sa.Text(), nullable=False),
    sa.Column("summary", sa.Text(), nullable=False),
    sa.Column("published_at", cp_types.UtcTimestamp(), nullable=True),
    sa.Column("first_seen_at", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("fetched_at", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("content_hash", sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(["source"], ["news_sources.source"], name=op.f("fk_news_articles_source_news_sources")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_news_articles")),
    sa.UniqueConstraint("identity_key", name=op.f("uq_news_articles_identity_key"))
    )
    with op.batch_alter_table("news_articles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_news_articles_guid_key"), ["guid_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_news_articles_published_at"), ["published_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_news_articles_title_hash"), ["title_hash"], unique=False)

    op.create_table("news_item_rejects",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("source", sa.String(length=64), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("raw_item", sa.Text(), nullable=False),
    sa.Column("item_sha256", sa.String(length=64), nullable=False),
    sa.Column("rejected_at", cp_types.UtcTimestamp(), nullable=False),
    sa.ForeignKeyConstraint(["source"], ["news_sources.source"], name=op.f("fk_news_item_rejects_source_news_sources")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_news_item_rejects")),
    sa.UniqueConstraint("source", "item_sha256", name=op.f("uq_news_item_rejects_source_item_sha256"))
    )
    op.create_table("news_polls",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("source", sa.String(length=64), nullable=False),
    sa.Column("polled_at", cp_types.UtcTimestamp(), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("http_status", sa.Integer(), nullable=True),
    sa.Column("raw_count", sa.Integer(), nullable=False),
    sa.Column("unique_count", sa.Integer(), nullable=False),
    sa.Column("updated_count", sa.Integer(), nullable=False),
    sa.Column("duplicate_count", sa.Integer(), nullable=False),
    sa.Column("unchanged_count", sa.Integer(), nullable=False),
    sa.Column("rejected_count", sa.Integer(), nullable=False),
    sa.Column("dedup_ratio", sa.Float(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("elapsed_ms", sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(["source"], ["news_sources.source"], name=op.f("fk_news_polls_source_news_sources")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_news_polls"))
    )
    with op.batch_alter_table("news_polls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_news_polls_source_polled_at"), ["source", "polled_at"], unique=False)

    op.create_table("news_dedup_stats",
    sa.Column("poll_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False),
    sa.Column("rolling_ratio", sa.Float(), nullable=True),
    sa.Column("ratio_std", sa.Float(), nullable=True),
    sa.Column("low_ratio_streak", sa.Integer(), nullable=False),
    sa.Column("last_new_article_at", cp_types.UtcTimestamp(), nullable=True),
    sa.Column("seconds_since_new", sa.Float(), nullable=False),
    sa.Column("stalled", sa.Boolean(), nullable=False),
    sa.Column("low_ratio", sa.Boolean(), nullable=False),
    sa.Column("volatile", sa.Boolean(), nullable=False),
    sa.Column("error_share", sa.Float(), nullable=False),
    sa.Column("health_score", sa.Float(), nullable=False),
    sa.Column("computed_at", cp_types.UtcTimestamp(), nullable=False),
    sa.ForeignKeyConstraint(["poll_id"], ["news_polls.id"], name=op.f("fk_news_dedup_stats_poll_id_news_polls")),
    sa.PrimaryKeyConstraint("poll_id", name=op.f("pk_news_dedup_stats"))
    )
    op.create_table("news_source_items",
    sa.Column("source", sa.String(length=64), nullable=False),
    sa.Column("item_key", sa.String(length=64), nullable=False),
    sa.Column("article_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("first_seen_at", cp_types.UtcTimestamp(), nullable=False),
    sa.ForeignKeyConstraint(["article_id"], ["news_articles.id"], name=op.f("fk_news_source_items_article_id_news_articles")),
    sa.ForeignKeyConstraint(["source"], ["news_sources.source"], name=op.f("fk_news_source_items_source_news_sources")),
    sa.PrimaryKeyConstraint("source", "item_key", name=op.f("pk_news_source_items"))
    )
    with op.batch_alter_table("news_source_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_news_source_items_article_id"), ["article_id"], unique=False)



def downgrade() -> None:
    with op.batch_alter_table("news_source_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_news_source_items_article_id"))

    op.drop_table("news_source_items")
    op.drop_table("news_dedup_stats")
    with op.batch_alter_table("news_polls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_news_polls_source_polled_at"))

    op.drop_table("news_polls")
    op.drop_table("news_item_rejects")
    with op.batch_alter_table("news_articles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_news_articles_title_hash"))
        batch_op.drop_index(batch_op.f("ix_news_articles_published_at"))
        batch_op.drop_index(batch_op.f("ix_news_articles_guid_key"))

    op.drop_table("news_articles")
    op.drop_table("news_sources")
